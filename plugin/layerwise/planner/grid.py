"""Where each rank sits in a layout: the one rank -> (replica, stage, tensor rank) mapping.

Ranks are laid out row-major over named axes, the last axis varying fastest: the convention of
DeepSpeed's `ProcessTopology`, which the runtime is handed for the same axes and dims (a test
checks that both, and megatron-core's `RankGenerator`, agree with this module). Pure Python, so
the planner can use it without torch.
"""

import math
from dataclasses import dataclass

AXES = ("data", "pipe", "model")
"""Replica (data parallel), pipeline stage, tensor-parallel rank: DeepSpeed's axis names."""


@dataclass(frozen=True)
class Place:
    """One rank's coordinates in a layout."""

    replica: int
    stage: int
    tensor: int


@dataclass(frozen=True)
class RankGrid:
    """Named axes and their sizes; rank = row-major index of the coordinates."""

    axes: tuple[str, ...]
    dims: tuple[int, ...]

    def __post_init__(self):
        if sorted(self.axes) != sorted(set(self.axes)) or not set(self.axes) <= set(AXES):
            raise ValueError(f"axes must be distinct names from {AXES}, got {self.axes}")
        if len(self.dims) != len(self.axes) or min(self.dims, default=1) < 1:
            raise ValueError(f"dims {self.dims} must be one size >= 1 per axis {self.axes}")

    @property
    def size(self) -> int:
        return math.prod(self.dims)

    def dim(self, axis: str) -> int:
        return self.dims[self.axes.index(axis)] if axis in self.axes else 1

    def coord(self, rank: int) -> dict[str, int]:
        if not 0 <= rank < self.size:
            raise ValueError(f"rank {rank} is outside a grid of {self.size} ranks")
        found = {}
        for axis, dim in zip(reversed(self.axes), reversed(self.dims)):
            rank, found[axis] = divmod(rank, dim)
        return {axis: found[axis] for axis in self.axes}

    def rank(self, **coord: int) -> int:
        """The rank at these coordinates; an axis left out is taken at 0."""
        rank = 0
        for axis, dim in zip(self.axes, self.dims):
            rank = rank * dim + coord.get(axis, 0)
        return rank

    def place(self, rank: int) -> Place:
        coord = self.coord(rank)
        return Place(coord.get("data", 0), coord.get("pipe", 0), coord.get("model", 0))

    def groups(self, axis: str) -> list[list[int]]:
        """Ranks that differ only along `axis`, one list per group, each in axis order."""
        found: dict[tuple, list[int]] = {}
        for rank in range(self.size):
            coord = self.coord(rank)
            key = tuple(value for name, value in coord.items() if name != axis)
            found.setdefault(key, []).append(rank)
        return list(found.values())


def megatron_grid(tensor_parallel: int, pipeline_parallel: int) -> RankGrid:
    """Megatron's default order ("tp-cp-ep-dp-pp"): TP ranks consecutive (inside a node), then
    pipeline stages; DeepSpeed's PipeModelDataParallelTopology lays ranks out the same way."""
    return RankGrid(("pipe", "data", "model"), (pipeline_parallel, 1, tensor_parallel))


def layerwise_grid(replicas: int, stages: int) -> RankGrid:
    """Replica d runs stage s on rank d * stages + s, so each pipeline fills whole nodes
    (DeepSpeed's default PipeDataParallelTopology would interleave replicas instead)."""
    return RankGrid(("data", "pipe"), (replicas, stages))
