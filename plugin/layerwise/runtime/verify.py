"""--verify: the same inputs through the whole model in one process, compared with the layout."""

from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from layerwise.config import RunConfig
from layerwise.layouts import Layout
from layerwise.runtime.distributed import singleton_groups
from layerwise.runtime.inputs import prefill_chunks
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer

TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2}  # max |error| / max |reference|
VERIFY_BYTES = 256 * 2**20  # compare every chunk up to this much output, else the first one


@dataclass(frozen=True)
class Verdict:
    chunks: int
    max_abs_error: float
    relative_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.relative_error <= self.tolerance


def chunk_shape(config: RunConfig, layout: Layout) -> tuple[int, ...]:
    """A prefill chunk's input and output: [tokens, hidden] (dense) or [seq, rows, hidden]."""
    hidden = config.model.hidden
    if config.model.kind == "dense":
        return (layout.chunk_tokens, hidden)
    return (config.workload.seq_len, layout.micro_batch_rows, hidden)


def chunks_to_verify(config: RunConfig, layout: Layout) -> int:
    shape = chunk_shape(config, layout)
    chunk_bytes = torch.Size(shape).numel() * torch.finfo(TORCH_DTYPES[config.run.dtype]).bits // 8
    return layout.micro_batches if chunk_bytes * layout.micro_batches <= VERIFY_BYTES else 1


def output_rank(layout: Layout) -> int:
    """Where replica 0's outputs appear: its last stage, tensor rank 0."""
    return layout.grid.rank(data=0, pipe=len(layout.stages) - 1, model=0)


def gather_to_rank0(
    outputs: list | None, count: int, source_rank: int, rank: int, shape, dtype, device
) -> list[torch.Tensor] | None:
    """The first `count` outputs of `source_rank`, moved to rank 0."""
    if source_rank == 0:
        return [t.detach() for t in outputs[:count]] if rank == 0 else None
    if rank == source_rank:
        for tensor in outputs[:count]:
            torch_dist.send(tensor.detach().contiguous(), dst=0)
        return None
    if rank != 0:
        return None
    received = []
    for _ in range(count):
        buffer = torch.empty(shape, dtype=dtype, device=device)
        torch_dist.recv(buffer, src=source_rank)
        received.append(buffer)
    return received


def reference(config: RunConfig, chunks: list[torch.Tensor], device, groups) -> list[torch.Tensor]:
    """The chunks through all layers at TP=1, in this one process."""
    dtype = TORCH_DTYPES[config.run.dtype]
    layers = [
        PresetLayer(config.model, index, config.run.seed, dtype, device, groups)
        for index in range(config.model.num_layers)
    ]
    outputs = []
    with torch.no_grad():
        for hidden in chunks:
            for layer in layers:
                hidden = layer(hidden)
            outputs.append(hidden)
    return outputs


def compare(pipeline: list[torch.Tensor], expected: list[torch.Tensor], dtype: str) -> Verdict:
    error = max(float((p.float() - e.float()).abs().max()) for p, e in zip(pipeline, expected))
    scale = max(float(e.float().abs().max()) for e in expected)
    return Verdict(len(expected), error, error / scale if scale else error, TOLERANCE[dtype])


def verify_outputs(
    config: RunConfig, layout: Layout, rank: int, world_size: int, outputs: list | None, device
) -> Verdict | None:
    """Called on every rank after a prefill; the verdict on rank 0, None elsewhere."""
    count = chunks_to_verify(config, layout)
    groups = singleton_groups(world_size, config.run.timeout_s)  # every rank creates groups
    dtype = TORCH_DTYPES[config.run.dtype]
    got = gather_to_rank0(
        outputs, count, output_rank(layout), rank, chunk_shape(config, layout), dtype, device
    )
    if rank != 0:
        return None
    chunks = prefill_chunks(config, layout, replica=0, device=device, count=count)
    return compare(got, reference(config, chunks, device, groups), config.run.dtype)
