"""--verify: the same inputs through the whole model in one process, compared with the pipeline."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from layerwise.config import RunConfig
from layerwise.layouts import Layout
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, chunk_input

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
    rows, hidden = layout.micro_batch_rows, config.model.hidden
    return (
        (rows, hidden) if config.model.kind == "dense" else (config.workload.seq_len, rows, hidden)
    )


def chunks_to_verify(config: RunConfig, layout: Layout) -> int:
    shape = chunk_shape(config, layout)
    chunk_bytes = torch.Size(shape).numel() * torch.finfo(TORCH_DTYPES[config.run.dtype]).bits // 8
    return layout.micro_batches if chunk_bytes * layout.micro_batches <= VERIFY_BYTES else 1


def gather_to_rank0(
    outputs: list | None,
    count: int,
    source_rank: int,
    rank: int,
    shape: tuple[int, ...],
    dtype,
    device,
) -> list[torch.Tensor] | None:
    """Replica 0's first `count` outputs, moved from its last stage to rank 0."""
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


def reference(
    config: RunConfig, layout: Layout, chunks: Sequence[int], device, groups
) -> list[torch.Tensor]:
    """Prefill chunks (by global index: replica r's chunk c is r * micro_batches + c) through
    all layers, in this one process."""
    dtype = TORCH_DTYPES[config.run.dtype]
    layers = [
        PresetLayer(config.model, index, config.run.seed, dtype, device, groups)
        for index in range(config.model.num_layers)
    ]
    outputs = []
    with torch.no_grad():
        for chunk in chunks:
            hidden = chunk_input(
                config.model,
                config.run.seed,
                chunk,
                layout.micro_batch_rows,
                config.workload.seq_len,
                dtype,
                device,
            )
            for layer in layers:
                hidden = layer(hidden)
            outputs.append(hidden)
    return outputs


def compare(pipeline: list[torch.Tensor], expected: list[torch.Tensor], dtype: str) -> Verdict:
    error = max(float((p.float() - e.float()).abs().max()) for p, e in zip(pipeline, expected))
    scale = max(float(e.float().abs().max()) for e in expected)
    return Verdict(len(expected), error, error / scale if scale else error, TOLERANCE[dtype])
