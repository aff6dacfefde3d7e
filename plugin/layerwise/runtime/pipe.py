"""A DeepSpeed PipelineModule whose layers are placed by layerwise's exact partitioner.

Works on any LayerSpec list. `partition` is either explicit boundaries (stages + 1 layer
indices, e.g. a Plan's) or "profile": build each layer once on this rank's device, time its
forward on a probe input, average the costs over all ranks (so every rank places alike) and give
them, with the measured activation and parameter bytes, to the exact min-bottleneck partitioner.
DeepSpeed's own 'profile' method raises NotImplementedError; 'uniform' and 'parameters' balance
layer or parameter counts, not time.

DeepSpeed has no public partition hook (a callable `partition_method` is refused), so this class
overrides the private `PipelineModule._partition_layers` and calls `_set_bounds`, as DeepSpeed
0.19 defines them: setup.cfg pins deepspeed < 0.20 and tests/runtime/test_pipe.py the contract.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from deepspeed import comm as dist
from deepspeed.accelerator import get_accelerator
from deepspeed.pipe import LayerSpec, PipelineModule

from layerwise.partition import Link, PartitionProblem, partition

METHOD = "layerwise"
NVLINK = Link(latency_s=10e-6, bytes_per_s=150e9)  # intra-node NCCL p2p (docs/sources.md)


@dataclass(frozen=True)
class LayerProfile:
    """Measured per layer: seconds per probe forward, bytes entering each layer (and leaving the
    last), parameter and buffer bytes."""

    seconds: tuple[float, ...]
    boundary_bytes: tuple[float, ...]
    resident_bytes: tuple[float, ...]


def check_boundaries(
    boundaries: Sequence[int], num_layers: int, num_stages: int
) -> tuple[int, ...]:
    """Boundaries must be num_stages + 1 non-decreasing indices from 0 to num_layers."""
    bounds = tuple(int(b) for b in boundaries)
    if (
        len(bounds) != num_stages + 1
        or bounds[0] != 0
        or bounds[-1] != num_layers
        or any(a > b for a, b in zip(bounds, bounds[1:]))
    ):
        raise ValueError(
            f"partition boundaries {list(bounds)} must be {num_stages + 1} non-decreasing layer "
            f"indices from 0 to {num_layers} for {num_stages} stages"
        )
    return bounds


def _bytes(value) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.numel() * value.element_size())
    if isinstance(value, tuple | list):
        return sum(_bytes(item) for item in value)
    return 0.0


def profile_layers(layers: Sequence, probe, repeats: int = 5) -> LayerProfile:
    """Build, time and free the layers one at a time on this rank's device, feeding each the
    previous one's output (so only one layer is resident at a time). A layer's cost is the
    fastest of `repeats` timed forwards: the least disturbed by whatever else runs."""
    accelerator = get_accelerator()
    device = torch.device(accelerator.device_name(accelerator.current_device()))
    seconds, boundary, resident = [], [_bytes(probe)], []
    hidden = probe
    for spec in layers:
        layer = spec.build() if isinstance(spec, LayerSpec) else spec
        layer.to(device)
        resident.append(sum(_bytes(t) for t in [*layer.parameters(), *layer.buffers()]))
        timings = []
        with torch.no_grad():
            output = layer(hidden)  # warm-up
            for _ in range(repeats):
                accelerator.synchronize()
                start = time.perf_counter()
                output = layer(hidden)
                accelerator.synchronize()
                timings.append(time.perf_counter() - start)
        seconds.append(min(timings))
        boundary.append(_bytes(output))
        hidden = output
        del layer
    return LayerProfile(tuple(seconds), tuple(boundary), tuple(resident))


def average_over_ranks(values: Sequence[float], group) -> tuple[float, ...]:
    """The mean over the group's ranks, identical on every rank."""
    accelerator = get_accelerator()
    tensor = torch.tensor(
        values, dtype=torch.float64, device=accelerator.device_name(accelerator.current_device())
    )
    dist.all_reduce(tensor, group=group)
    return tuple((tensor / dist.get_world_size(group=group)).tolist())


class LayerwisePipelineModule(PipelineModule):
    """PipelineModule(layers, ..., partition=boundaries | "profile").

    `probe` (profile only): the input of the first layer for one micro-batch. `link`: the
    stage-to-stage link the partitioner assumes (NVLink by default). `capacity_bytes`: per-GPU
    memory the partitioner may fill with parameters. Other keyword arguments go to
    PipelineModule, except partition_method, which this class sets.
    """

    def __init__(
        self,
        layers,
        *,
        partition: Sequence[int] | str,
        probe=None,
        link: Link = NVLINK,
        capacity_bytes: float = math.inf,
        **kwargs,
    ):
        if partition == "profile" and probe is None:
            raise ValueError("partition='profile' needs a probe input for the first layer")
        if isinstance(partition, str) and partition != "profile":
            raise ValueError(f"partition must be boundaries or 'profile', got {partition!r}")
        self._layerwise = (partition, probe, link, capacity_bytes)
        self.profile: LayerProfile | None = None
        super().__init__(layers, partition_method=METHOD, **kwargs)

    def _partition_layers(self, method: str = "uniform") -> None:
        if method != METHOD:
            super()._partition_layers(method)
            return
        how, probe, link, capacity = self._layerwise
        if how == "profile":
            measured = profile_layers(self._layer_specs, probe)
            seconds = average_over_ranks(measured.seconds, self.world_group)
            self.profile = LayerProfile(seconds, measured.boundary_bytes, measured.resident_bytes)
            problem = PartitionProblem(
                seconds,
                measured.boundary_bytes,
                measured.resident_bytes,
                (link,) * (self.num_stages - 1),
                (capacity,) * self.num_stages,
            )
            how = partition(problem).boundaries
        self.parts = list(check_boundaries(how, len(self._layer_specs), self.num_stages))
        stage = self._topo.get_coord(self.global_rank).pipe
        self._set_bounds(start=self.parts[stage], stop=self.parts[stage + 1])
