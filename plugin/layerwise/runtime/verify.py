"""--verify: the same inputs through the whole model in one process, with the same KV cache,
compared with the layout: prefill outputs, every decode step's outputs, and for a model with a
vocabulary the greedy next token of every sequence."""

from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from layerwise.config.sections import RunConfig
from layerwise.model.spec import ModelSpec
from layerwise.planner.assignment import RankAssignment, assign, output_rank
from layerwise.planner.records import Layout
from layerwise.runtime.distributed import singleton_groups
from layerwise.runtime.inputs import decode_tokens, prefill_chunks
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, stage_cache

TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2}  # max |error| / max |reference|
VERIFY_BYTES = 256 * 2**20  # compare every chunk up to this much output, else the first one


@dataclass(frozen=True)
class Verdict:
    """Errors over `chunks` prefill outputs and `decode_steps` decode steps; `greedy_match`:
    the argmax token agrees wherever the error cannot flip it (None without a vocabulary)."""

    chunks: int
    max_abs_error: float
    relative_error: float
    tolerance: float
    decode_steps: int = 0
    greedy_match: bool | None = None
    greedy_decided: tuple[int, int] = (0, 0)
    """(positions whose greedy token the error cannot flip, positions)."""

    @property
    def ok(self) -> bool:
        return self.relative_error <= self.tolerance and self.greedy_match is not False


def chunk_shape(model: ModelSpec, assignment: RankAssignment) -> tuple[int, ...]:
    """A prefill chunk's output: [tokens, hidden] (dense), [seq, rows, hidden], or the last
    position's logits [1, rows, vocab]."""
    if model.kind == "dense":
        return (assignment.chunk_tokens, model.hidden)
    if model.vocab_size:
        return (1, assignment.micro_batch_rows, model.vocab_size)
    return (assignment.seq_len, assignment.micro_batch_rows, model.hidden)


def decode_shape(model: ModelSpec, assignment: RankAssignment) -> tuple[int, ...]:
    """A decode micro-batch's output: [rows, hidden] (dense) or [1, rows, hidden or vocab]."""
    rows = assignment.decode_rows
    if model.kind == "dense":
        return (rows, model.hidden)
    return (1, rows, model.vocab_size or model.hidden)


def chunks_to_verify(model: ModelSpec, assignment: RankAssignment) -> int:
    shape = chunk_shape(model, assignment)
    chunk_bytes = torch.Size(shape).numel() * torch.finfo(TORCH_DTYPES[assignment.dtype]).bits // 8
    count = assignment.micro_batches
    return count if chunk_bytes * count <= VERIFY_BYTES else 1


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


def _forward(layers, hidden: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        hidden = layer(hidden)
    return hidden


def reference(
    model: ModelSpec, assignment: RankAssignment, device, groups
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The assignment's replica's prefill chunk outputs and decode step outputs (micro-batch by
    micro-batch, step by step) through all layers at TP=1 in this one process, with one KV
    cache."""
    dtype = TORCH_DTYPES[assignment.dtype]
    cache = stage_cache(model, assignment, device)
    layers = [
        PresetLayer(model, index, assignment.seed, dtype, device, groups, cache)
        for index in range(model.pipeline_layers)
    ]
    prefill, decode = [], []
    with torch.no_grad():
        chunks = prefill_chunks(model, assignment, device)
        if cache is not None:
            cache.start(0, len(chunks))
        prefill = [_forward(layers, chunk) for chunk in chunks]
        for step in range(assignment.decode_steps):
            tokens = decode_tokens(model, assignment, device, step)
            if cache is not None:
                cache.start(assignment.seq_len + step, len(tokens))
            decode += [_forward(layers, micro_batch) for micro_batch in tokens]
    return prefill, decode


def compare(pipeline: list[torch.Tensor], expected: list[torch.Tensor]) -> tuple[float, float]:
    """(max |error|, that over max |reference|) over paired tensors."""
    if not expected:
        return 0.0, 0.0
    error = max(float((p.float() - e.float()).abs().max()) for p, e in zip(pipeline, expected))
    scale = max(float(e.float().abs().max()) for e in expected)
    return error, error / scale if scale else error


def greedy_match(
    pipeline: list[torch.Tensor], expected: list[torch.Tensor], error: float
) -> tuple[bool, int, int]:
    """(every decided position's argmax agrees, positions decided, positions). A position is
    decided when the reference's top two logits are more than 2 x `error` apart: a closer pair
    can swap within the error the comparison allows (bf16 logits tie often; the order of
    floating-point sums differs between kernels and between two builds of the same layers)."""
    agree, decided, total = True, 0, 0
    for got, reference in zip(pipeline, expected):
        top = reference.float().topk(2, dim=-1)
        clear = (top.values[..., 0] - top.values[..., 1]) > 2 * error
        agree &= bool((got.float().argmax(-1) == top.indices[..., 0])[clear].all())
        decided += int(clear.sum())
        total += clear.numel()
    return agree, decided, total


def verify_outputs(
    config: RunConfig,
    layout: Layout,
    assignment: RankAssignment,
    world_size: int,
    outputs: list | None,
    decoded: list | None,
    device,
) -> Verdict | None:
    """Called on every rank after the prefills and decode steps (`decoded`: each step's
    outputs where this rank holds them); the verdict on rank 0, None elsewhere."""
    model, rank = config.model, assignment.rank
    count = chunks_to_verify(model, assignment)
    groups = singleton_groups(world_size, config.run.timeout_s)  # every rank creates groups
    dtype = TORCH_DTYPES[assignment.dtype]
    source = output_rank(layout)
    got = gather_to_rank0(
        outputs, count, source, rank, chunk_shape(model, assignment), dtype, device
    )
    steps = [t for step in decoded or [] for t in step] if rank == source else None
    decode_steps = assignment.decode_steps
    step_count = decode_steps * assignment.decode_micro_batches
    got_steps = gather_to_rank0(
        steps, step_count, source, rank, decode_shape(model, assignment), dtype, device
    )
    if rank != 0:
        return None
    prefill, decode = reference(model, assign(config, layout, source), device, groups)
    error, relative = compare(got + got_steps, prefill[:count] + decode[:step_count])
    greedy, decided = None, (0, 0)
    if config.model.vocab_size:
        greedy, *decided = greedy_match(
            got + got_steps, prefill[:count] + decode[:step_count], error
        )
    return Verdict(
        count,
        error,
        relative,
        TOLERANCE[config.run.dtype],
        decode_steps,
        greedy,
        tuple(decided),
    )
