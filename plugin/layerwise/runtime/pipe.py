"""A drop-in DeepSpeed PipelineModule whose layers can be placed by layerwise's exact partitioner.

`LayerwisePipelineModule` takes everything `PipelineModule` takes, positionally and by keyword,
with the same meaning and defaults: swapping the class name changes nothing else. Its
`partition_method` accepts DeepSpeed's values ('parameters', 'uniform', 'type:<regex>'),
which DeepSpeed itself then applies, plus two of ours:
  'layerwise': the exact min-bottleneck partition of modelled per-layer costs (`layer_costs`,
    else each layer's trainable parameter count, DeepSpeed's 'parameters' measure), with each
    layer's parameter bytes held to `capacity_bytes` per stage;
  'profile': build each layer once on this rank's device, time its forward on `probe` (the
    first layer's input for one micro-batch), average over all ranks (so every rank places
    alike), and partition the measured seconds with the measured activation and parameter
    bytes. DeepSpeed's own 'profile' raises NotImplementedError.
Explicit boundaries (stages + 1 layer indices, e.g. a plan's) go through `boundaries=`.
With `training=True` (the default, as PipelineModule is mostly trained) a placement of ours that
leaves a stage without trainable parameters is refused: DeepSpeed's optimizer would get an empty
parameter list on that stage. Inference (`training=False`) allows it.

DeepSpeed has no public partition hook (a callable `partition_method` is refused), so this class
places layers through compat.deepspeed_internals, which holds every private member it needs
(`_partition_layers`, `_set_bounds`, `_topo`, `_layer_specs`) as DeepSpeed 0.19 defines them.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from deepspeed import comm as dist
from deepspeed.accelerator import get_accelerator
from deepspeed.pipe import LayerSpec, TiedLayerSpec
from deepspeed.runtime.activation_checkpointing import checkpointing
from torch import nn

from layerwise.partition.search import Link, PartitionProblem, partition
from layerwise.runtime.compat.deepspeed_internals import (
    PartitionHook,
    layer_specs,
    set_stage_bounds,
)

OUR_METHODS = ("layerwise", "profile")
NVLINK = Link(latency_s=10e-6, bytes_per_s=150e9)  # intra-node NCCL p2p (docs/sources.md)


@dataclass(frozen=True)
class LayerProfile:
    """Measured per layer: seconds per probe forward, bytes entering each layer (and leaving the
    last), parameter and buffer bytes, trainable parameters. A tied module's bytes are counted
    at each occurrence, since occurrences on different stages each hold a copy (on one stage
    that overcounts, which only makes the memory check safer)."""

    seconds: tuple[float, ...]
    boundary_bytes: tuple[float, ...]
    resident_bytes: tuple[float, ...]
    parameters: tuple[int, ...] = ()


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


def _trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _callable_of(spec, tied: dict, device: torch.device):
    """(what to call, the module holding its weights or None) for one entry of a layer list:
    a module, a LayerSpec (built now), a TiedLayerSpec (its module built once per key, called
    through forward_fn when given), or a plain callable."""
    if isinstance(spec, TiedLayerSpec):
        if spec.key not in tied:
            tied[spec.key] = spec.build().to(device)
        module = tied[spec.key]
        if spec.forward_fn is None:
            return module, module
        return (lambda hidden: spec.forward_fn(module, hidden)), module
    if isinstance(spec, LayerSpec):
        module = spec.build().to(device)
        return module, module
    if isinstance(spec, nn.Module):
        return spec.to(device), spec
    return spec, None


def profile_layers(layers: Sequence, probe, repeats: int = 5) -> LayerProfile:
    """Build, time and free the layers one at a time on this rank's device, feeding each the
    previous one's output (so only one layer, and the tied modules, is resident at a time). A
    layer's cost is the fastest of `repeats` timed forwards: the least disturbed by whatever
    else runs. Plain callables are timed and hold no bytes."""
    accelerator = get_accelerator()
    device = torch.device(accelerator.device_name(accelerator.current_device()))
    seconds, boundary, resident, parameters = [], [_bytes(probe)], [], []
    hidden, tied = probe, {}
    for spec in layers:
        forward, module = _callable_of(spec, tied, device)
        held = [] if module is None else [*module.parameters(), *module.buffers()]
        resident.append(sum(_bytes(t) for t in held))
        parameters.append(0 if module is None else _trainable(module))
        timings = []
        with torch.no_grad():
            output = forward(hidden)  # warm-up
            for _ in range(repeats):
                accelerator.synchronize()
                start = time.perf_counter()
                output = forward(hidden)
                accelerator.synchronize()
                timings.append(time.perf_counter() - start)
        seconds.append(min(timings))
        boundary.append(_bytes(output))
        hidden = output
        del forward, module
    return LayerProfile(tuple(seconds), tuple(boundary), tuple(resident), tuple(parameters))


def layer_parameters(layers: Sequence) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(trainable parameters, parameter bytes) per layer, building one LayerSpec at a time on
    the CPU as DeepSpeed's 'parameters' method does; plain callables hold none."""
    counts, sizes, tied = [], [], {}
    for spec in layers:
        _, module = _callable_of(spec, tied, torch.device("cpu"))
        counts.append(0 if module is None else _trainable(module))
        sizes.append(0.0 if module is None else sum(_bytes(p) for p in module.parameters()))
    return tuple(counts), tuple(sizes)


def average_over_ranks(values: Sequence[float], group) -> tuple[float, ...]:
    """The mean over the group's ranks, identical on every rank."""
    accelerator = get_accelerator()
    tensor = torch.tensor(
        values, dtype=torch.float64, device=accelerator.device_name(accelerator.current_device())
    )
    dist.all_reduce(tensor, group=group)
    return tuple((tensor / dist.get_world_size(group=group)).tolist())


def layer_span(first: int, stop: int) -> str:
    return "no layers" if first == stop else f"layers {first}-{stop - 1}"


def empty_stages(parameters: Sequence[int], boundaries: Sequence[int]) -> list[int]:
    """Stages whose layers hold no trainable parameter."""
    return [
        stage
        for stage, (first, stop) in enumerate(zip(boundaries, boundaries[1:]))
        if sum(parameters[first:stop]) == 0
    ]


class LayerwisePipelineModule(PartitionHook):
    """PipelineModule(layers, num_stages, topology, ..., partition_method, ...), plus keyword
    arguments: `boundaries` (explicit placement), `probe` ('profile'), `layer_costs`
    ('layerwise'), `link` (the stage-to-stage link both assume; NVLink by default),
    `capacity_bytes` (per-GPU memory for parameters) and `training` (refuse a stage without
    trainable parameters)."""

    def __init__(
        self,
        layers,
        num_stages=None,
        topology=None,
        loss_fn=None,
        seed_layers=False,
        seed_fn=None,
        base_seed=1234,
        partition_method="parameters",
        activation_checkpoint_interval=0,
        activation_checkpoint_func=checkpointing.checkpoint,
        checkpointable_layers=None,
        dynamic_shape=False,
        *,
        boundaries: Sequence[int] | None = None,
        probe=None,
        layer_costs: Sequence[float] | None = None,
        link: Link = NVLINK,
        capacity_bytes: float = math.inf,
        training: bool = True,
    ):
        method = str(partition_method).lower()
        if boundaries is not None and method in OUR_METHODS:
            raise ValueError(
                f"give either boundaries or partition_method={partition_method!r}, not both"
            )
        if method == "profile" and probe is None:
            raise ValueError("partition_method='profile' needs probe=, the first layer's input")
        self._layerwise = (boundaries, probe, layer_costs, link, capacity_bytes, training)
        self.profile: LayerProfile | None = None
        super().__init__(
            layers,
            num_stages,
            topology,
            loss_fn,
            seed_layers,
            seed_fn,
            base_seed,
            partition_method,
            activation_checkpoint_interval,
            activation_checkpoint_func,
            checkpointable_layers,
            dynamic_shape,
        )

    def place_layers(self, method: str) -> None:
        boundaries, probe, layer_costs, link, capacity, training = self._layerwise
        method = method.lower()
        if boundaries is None and method not in OUR_METHODS:
            super().place_layers(method)
            return
        parameters = None
        if boundaries is None and method == "profile":
            measured = profile_layers(layer_specs(self), probe)
            seconds = average_over_ranks(measured.seconds, self.world_group)
            self.profile = LayerProfile(
                seconds, measured.boundary_bytes, measured.resident_bytes, measured.parameters
            )
            boundaries = self._exact(seconds, measured.boundary_bytes, measured.resident_bytes)
            parameters = measured.parameters
        elif boundaries is None:
            parameters, sizes = layer_parameters(layer_specs(self))
            costs = tuple(layer_costs) if layer_costs is not None else parameters
            boundaries = self._exact(costs, (0.0,) * (len(costs) + 1), sizes)
        self.parts = list(check_boundaries(boundaries, len(layer_specs(self)), self.num_stages))
        if training:
            self._refuse_stages_without_parameters(parameters)
        set_stage_bounds(self, self.parts)

    def _exact(self, costs, boundary_bytes, resident_bytes) -> tuple[int, ...]:
        """The exact min-bottleneck boundaries of these per-layer figures on this pipeline."""
        _, _, _, link, capacity, _ = self._layerwise
        problem = PartitionProblem(
            tuple(float(c) for c in costs),
            tuple(boundary_bytes),
            tuple(resident_bytes),
            (link,) * (self.num_stages - 1),
            (capacity,) * self.num_stages,
        )
        return partition(problem).boundaries

    def _refuse_stages_without_parameters(self, parameters) -> None:
        if parameters is None:
            parameters, _ = layer_parameters(layer_specs(self))
        empty = empty_stages(parameters, self.parts)
        if empty:
            spans = ", ".join(f"{s} ({layer_span(*self.parts[s : s + 2])})" for s in empty)
            raise ValueError(
                f"stage(s) {spans} of boundaries {self.parts} hold no trainable parameters: "
                f"DeepSpeed's optimizer would get an empty parameter list there. Choose other "
                f"boundaries, or pass training=False for inference"
            )
