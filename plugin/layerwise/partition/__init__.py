"""The exact min-max contiguous partition and its tie-break; no model needed, only per-layer
costs, sizes and links.

    from layerwise.partition import Link, PartitionProblem, partition
"""

from layerwise.partition.costs import partition_costs
from layerwise.partition.search import (
    Link,
    Partition,
    PartitionInputError,
    PartitionProblem,
    fits_capacity,
    partition,
    stage_costs,
    uniform_boundaries,
)

__all__ = [
    "Link",
    "Partition",
    "PartitionInputError",
    "PartitionProblem",
    "fits_capacity",
    "partition",
    "partition_costs",
    "stage_costs",
    "uniform_boundaries",
]
