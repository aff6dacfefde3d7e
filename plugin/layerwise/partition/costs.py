"""The exact partitioner on a plain list of per-layer costs: `layerwise.partition_costs`."""

import math
from collections.abc import Sequence
from numbers import Real

from layerwise.partition.search import Link, PartitionInputError, PartitionProblem, partition


def partition_costs(
    costs: Sequence[float],
    stages: int,
    *,
    memory: Sequence[float] | None = None,
    capacity: float | None = None,
    activation_bytes: float | Sequence[float] = 0.0,
    link: Link | None = None,
) -> tuple[int, ...]:
    """Stage boundaries of the fastest contiguous split of a plain list of per-layer costs:
    stages + 1 layer indices, stage s running layers [b[s], b[s+1]) (DeepSpeed's `parts`).

    The exact partitioner of `layerwise.partition` on one line: memory is each layer's resident
    bytes and capacity what one stage may hold (default: no limit); activation_bytes the bytes
    crossing each boundary (one number, or layers + 1 of them) over `link` (default: transfers
    are free). Raises CapacityError when the layers do not fit, PartitionInputError (a
    ValueError) on a bad number.

    >>> partition_costs([1, 1, 1, 4], 2)
    (0, 3, 4)
    >>> partition_costs([1, 1, 1, 4], 2, memory=[2, 1, 1, 1], capacity=3)
    (0, 2, 4)
    """
    if stages < 1:
        raise PartitionInputError(f"stages = {stages}: need at least one")
    layers = len(costs)
    if isinstance(activation_bytes, Real):
        activation_bytes = (activation_bytes,) * (layers + 1)
    if link is None:
        link, activation_bytes = Link(0.0, 1.0), (0.0,) * (layers + 1)
    problem = PartitionProblem(
        tuple(costs),
        tuple(activation_bytes),
        tuple(memory) if memory is not None else (0.0,) * layers,
        (link,) * (stages - 1),
        (math.inf if capacity is None else capacity,) * stages,
    )
    return partition(problem).boundaries
