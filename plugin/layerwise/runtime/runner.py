"""Build this rank's stage of a layer-wise plan with DeepSpeed and time prefill and decode.

Inference goes through `engine.eval_batch(compute_loss=False, reduce_output=None)`; the
FACTS.md pitfalls are handled here: `total_loss` reset before each call, activation shapes reset
when the micro-batch shape changes, `(input, None)` from the iterator, tensors only between
stages, outputs only on each replica's last stage.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import deepspeed
import torch
from deepspeed.pipe import LayerSpec

from layerwise.config import RunConfig
from layerwise.layouts import Layout
from layerwise.runtime.distributed import DistEnv
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, chunk_input
from layerwise.runtime.pipe import LayerwisePipelineModule, replica_major_topology

DECODE_SEED_OFFSET = 1_000_000  # decode inputs are drawn apart from prefill chunks


@dataclass(frozen=True)
class Placement:
    """Where this rank sits in the layer-wise layout."""

    stages: int
    replica: int
    stage: int

    @property
    def is_first(self) -> bool:
        return self.stage == 0

    @property
    def is_last(self) -> bool:
        return self.stage == self.stages - 1

    def last_rank(self, replica: int) -> int:
        return replica * self.stages + self.stages - 1


def placement(layout: Layout, env: DistEnv) -> Placement:
    stages = len(layout.stages)
    return Placement(stages, env.rank // stages, env.rank % stages)


def boundaries(layout: Layout) -> tuple[int, ...]:
    return (*(stage.first_layer for stage in layout.stages), layout.stages[-1].stop_layer)


def layer_specs(config: RunConfig, device: torch.device, groups) -> list[LayerSpec]:
    dtype = TORCH_DTYPES[config.run.dtype]
    return [
        LayerSpec(PresetLayer, config.model, index, config.run.seed, dtype, device, groups)
        for index in range(config.model.num_layers)
    ]


def build_engine(config: RunConfig, layout: Layout, device: torch.device, groups):
    """Only this rank's layers are built (LayerSpec), placed by the plan's boundaries."""
    module = LayerwisePipelineModule(
        layer_specs(config, device, groups),
        partition=boundaries(layout),
        topology=replica_major_topology(layout.replicas, len(layout.stages)),
    )
    ds_config = {
        "train_micro_batch_size_per_gpu": layout.micro_batch_rows,
        "gradient_accumulation_steps": layout.micro_batches,
        "train_batch_size": layout.micro_batch_rows * layout.micro_batches * layout.replicas,
        "steps_per_print": 10**9,
        **config.deepspeed,
    }
    engine, *_ = deepspeed.initialize(model=module, config=ds_config)
    return engine


def _inputs(
    config: RunConfig, where: Placement, first: int, count: int, rows: int, seq_len: int, device
) -> Iterator:
    """Chunks first..first+count-1 on a first stage; placeholders elsewhere (a last stage reads
    only the absent labels)."""
    dtype = TORCH_DTYPES[config.run.dtype]
    for index in range(first, first + count):
        if where.is_first:
            yield (
                chunk_input(config.model, config.run.seed, index, rows, seq_len, dtype, device),
                None,
            )
        else:
            yield torch.empty(0, device=device), None


def prefill_inputs(config: RunConfig, layout: Layout, where: Placement, device) -> Iterator:
    """The replica's prefill chunks."""
    count = layout.micro_batches
    return _inputs(
        config,
        where,
        where.replica * count,
        count,
        layout.micro_batch_rows,
        config.workload.seq_len,
        device,
    )


def decode_inputs(config: RunConfig, layout: Layout, where: Placement, device) -> Iterator:
    """One new token per sequence, split into the plan's decode micro-batches (dense models)."""
    count = layout.decode_micro_batches
    rows = config.workload.batch_size // layout.replicas // count
    first = DECODE_SEED_OFFSET + where.replica * count
    return _inputs(config, where, first, count, rows, 1, device)


def run_batch(engine, inputs: Iterator, micro_batches: int) -> list | None:
    """One eval_batch; the list of micro-batch outputs on a last stage, None elsewhere."""
    engine.total_loss = None
    engine.reset_activation_shape()
    return engine.eval_batch(
        iter(inputs), compute_loss=False, reduce_output=None, num_micro_batches=micro_batches
    )


def timed(
    step: Callable[[], object],
    iterations: int,
    barrier: Callable[[], None],
    sync: Callable[[], None],
    tick: Callable[[], None],
) -> tuple[list[float], object]:
    """Seconds of each call of `step`, every rank started together and finished together."""
    seconds, result = [], None
    for _ in range(iterations):
        barrier()
        sync()
        start = time.perf_counter()
        result = step()
        sync()
        barrier()
        seconds.append(time.perf_counter() - start)
        tick()
    return seconds, result
