"""A layout's pipeline layers as the partitioner and the pricing see them: costs, sizes, memory.

Pipeline layer i is ModelSpec.role(i): with a vocabulary, layer 0 is the token embedding and the
last the LM head; the blocks sit between. Sizes are per GPU of a stage's TP group.
"""

import math
from dataclasses import dataclass
from itertools import accumulate

from layerwise.config.sections import Auto, Mode, Workload
from layerwise.costmodel.kernels import (
    Chunk,
    LayerCost,
    boundary_bytes,
    layer_cost,
    layer_kv_bytes_per_token,
    layer_weight_bytes,
    workspace_bytes,
)
from layerwise.hardware.spec import HardwareSpec
from layerwise.model.spec import ModelSpec
from layerwise.partition.search import Link, PartitionProblem
from layerwise.planner.grid import RankGrid
from layerwise.planner.inputs import PlanInputs

PIPE_BUFFERS = 2  # micro-batches in flight per stage in an inference schedule (DeepSpeed's)


@dataclass(frozen=True, kw_only=True)
class Setting:
    """What a layout is priced under: TP degree, rank grid, batch per replica and its decode
    micro-batches (the layout's configured count or "auto": the fastest decode step's)."""

    mode: Mode
    tp: int
    replicas: int
    grid: RankGrid
    sequences: int
    decode_micro_batches: int | Auto

    @property
    def num_stages(self) -> int:
        return self.grid.dim("pipe")

    @property
    def stage_ranks(self) -> tuple[tuple[int, ...], ...]:
        """Replica 0's stages, each the ranks of its TP group."""
        return tuple(
            tuple(self.grid.rank(pipe=stage, model=t) for t in range(self.tp))
            for stage in range(self.num_stages)
        )


def engine_costs(gpu: HardwareSpec, mode: str) -> tuple[float, float]:
    """(seconds per run, seconds per micro-batch on each stage) of the mode's pipeline engine,
    as calibrated (HardwareSpec.schedule_us; 0 where not measured)."""
    costs = gpu.schedule_us.get(mode, {})
    return costs.get("run", 0.0) * 1e-6, costs.get("micro_batch", 0.0) * 1e-6


def chunk_unit(inputs: PlanInputs, setting: Setting) -> int:
    """Tokens a chunk is made of: any token (dense layer-wise) or whole sequences."""
    independent = inputs.model.tokens_independent and setting.mode == "layerwise"
    return 1 if independent else inputs.workload.seq_len


def links(gpu: HardwareSpec, setting: Setting) -> tuple[Link, ...]:
    """Stage s to s+1 crosses nodes when their first ranks sit on different nodes."""
    per_node = gpu.gpus_per_node
    found = []
    for here, there in zip(setting.stage_ranks, setting.stage_ranks[1:]):
        spec = gpu.intra_node if here[0] // per_node == there[0] // per_node else gpu.inter_node
        found.append(Link(spec.p2p_latency_us * 1e-6, spec.p2p_gbs * 1e9))
    return tuple(found)


def prefill_chunk(workload: Workload, chunk_tokens: int) -> Chunk:
    seq_len = workload.seq_len
    return Chunk(
        tokens=chunk_tokens,
        sequences=max(1, chunk_tokens // seq_len),
        context=seq_len,
        decode=False,
    )


def decode_chunk(workload: Workload, sequences: int) -> Chunk:
    """One decode step of `sequences` sequences, attending over the prompt's KV cache."""
    return Chunk(tokens=sequences, sequences=sequences, context=workload.seq_len, decode=True)


def _first_block(model: ModelSpec) -> int:
    return 1 if model.vocab_size else 0


def layer_costs(
    inputs: PlanInputs, setting: Setting, chunk: Chunk, weights_in_l2: bool = False
) -> list[LayerCost]:
    """Per pipeline layer. Each distinct kind is priced once: the embedding, a block (two for
    dense layers under TP: column- and row-parallel), the LM head."""
    model = inputs.model

    def price(layer: int) -> LayerCost:
        return layer_cost(
            model,
            inputs.gpu,
            layer,
            chunk,
            setting.tp,
            inputs.dtype_bytes,
            inputs.l2_budget_bytes,
            weights_in_l2,
            inputs.storage,
        )

    kinds = 2 if model.kind == "dense" and setting.tp > 1 else 1
    first = _first_block(model)
    priced = [price(first + parity) for parity in range(min(kinds, model.num_layers))]
    blocks = [priced[block % len(priced)] for block in range(model.num_layers)]
    if not model.vocab_size:
        return blocks
    return [price(0), *blocks, price(model.pipeline_layers - 1)]


def _per_layer(model: ModelSpec, size) -> tuple[float, ...]:
    """size(layer) for every pipeline layer, computed once per kind."""
    first = _first_block(model)
    blocks = (size(first),) * model.num_layers
    if not model.vocab_size:
        return blocks
    return (size(0), *blocks, size(model.pipeline_layers - 1))


def boundary_sizes(inputs: PlanInputs, chunk: Chunk) -> tuple[float, ...]:
    """Bytes entering each pipeline layer and leaving the last (pipeline_layers + 1 entries):
    token ids into the embedding, last-position logits out of the head, hidden states
    elsewhere."""
    model, b = inputs.model, inputs.dtype_bytes
    hidden = float(chunk.tokens * model.hidden * b)
    sizes = [hidden] * (model.pipeline_layers + 1)
    sizes[0] = boundary_bytes(model, 0, chunk, b)
    sizes[-1] = boundary_bytes(model, model.pipeline_layers, chunk, b)
    return tuple(sizes)


def weight_sizes(inputs: PlanInputs, setting: Setting) -> tuple[float, ...]:
    """Weight bytes of each pipeline layer on one GPU of its TP group."""
    model, b, tp = inputs.model, inputs.storage.weight_bytes, setting.tp
    return _per_layer(model, lambda layer: layer_weight_bytes(model, layer, tp, b))


def resident_sizes(inputs: PlanInputs, setting: Setting) -> tuple[float, ...]:
    """Weights plus the KV cache of the replica's prompt and decode tokens, per pipeline layer."""
    model, tp, work, storage = inputs.model, setting.tp, inputs.workload, inputs.storage
    cached = setting.sequences * (work.seq_len + work.decode_steps)

    def resident(layer: int) -> float:
        kv = layer_kv_bytes_per_token(model, layer, tp, storage.kv_bytes)
        return layer_weight_bytes(model, layer, tp, storage.weight_bytes) + kv * cached

    return _per_layer(model, resident)


def prefix(sizes: tuple[float, ...]) -> list[float]:
    """prefix[i] = sum(sizes[:i]), so a stage's total is prefix[stop] - prefix[first]."""
    return [0.0, *accumulate(sizes)]


def batch_bytes(inputs: PlanInputs, setting: Setting) -> tuple[float, float]:
    """(inputs the first stage holds, outputs the last stage keeps) for one replica batch: token
    ids and logits with a vocabulary, hidden states without.

    The first stage's inputs are prepared before the clock starts (like a prefetching data
    loader); the last stage keeps every micro-batch's output, which DeepSpeed's eval_batch and
    Megatron's forward-only schedule both return.
    """
    model, b = inputs.model, inputs.dtype_bytes
    tokens = setting.sequences * inputs.workload.seq_len
    batch = Chunk(tokens=tokens, sequences=setting.sequences, context=0, decode=False)
    return boundary_bytes(model, 0, batch, b), boundary_bytes(
        model, model.pipeline_layers, batch, b
    )


def _workspace(inputs: PlanInputs, setting: Setting, tokens: int, layers: list[int]) -> float:
    b, tp = inputs.dtype_bytes, setting.tp
    return max((workspace_bytes(inputs.model, i, tokens, tp, b) for i in layers), default=0.0)


def _kinds_in(model: ModelSpec, first: int, stop: int) -> list[int]:
    """One pipeline layer of each kind in [first, stop)."""
    block = _first_block(model)
    found = [i for i in (0, model.pipeline_layers - 1) if first <= i < stop]
    if max(first, block) < min(stop, block + model.num_layers):
        found.append(max(first, block))
    return found


def stage_buffers(
    inputs: PlanInputs,
    setting: Setting,
    chunk_tokens: int,
    sizes: tuple[float, ...],
    first: int,
    stop: int,
) -> float:
    """Activations of a stage holding pipeline layers [first, stop), given the chunk's
    boundary_sizes: PIPE_BUFFERS in-flight micro-batches x (input + output), plus the largest
    workspace of its layers."""
    work = _workspace(inputs, setting, chunk_tokens, _kinds_in(inputs.model, first, stop))
    return PIPE_BUFFERS * (sizes[first] + sizes[stop]) + work


def nominal_buffers(inputs: PlanInputs, setting: Setting, chunk_tokens: int) -> list[float]:
    """stage_buffers of every stage before the placement is known: stage 0 receives the
    embedding's input, the last stage sends the head's output, others hidden states; the
    workspace is the largest of a block's and the embedding's (stage 0) and head's (last)."""
    model, last = inputs.model, setting.num_stages - 1
    sizes = boundary_sizes(inputs, prefill_chunk(inputs.workload, chunk_tokens))
    block = _first_block(model)
    hidden = sizes[block]

    def buffers(stage: int) -> float:
        received = sizes[0] if stage == 0 else hidden
        sent = sizes[-1] if stage == last else hidden
        first = 0 if stage == 0 else block  # a range holding a block, and the ends it may hold
        stop = model.pipeline_layers if stage == last else block + 1
        work = _workspace(inputs, setting, chunk_tokens, _kinds_in(model, first, stop))
        return PIPE_BUFFERS * (received + sent) + work

    middle = buffers(1) if 0 < 1 < last else 0.0
    return [buffers(s) if s in (0, last) else middle for s in range(setting.num_stages)]


def problem(inputs: PlanInputs, setting: Setting, chunk_tokens: int) -> PartitionProblem:
    """Prefill cost of one chunk per pipeline layer, the bytes at each boundary, each layer's
    resident bytes and each stage's room for them."""
    chunk = prefill_chunk(inputs.workload, chunk_tokens)
    costs = layer_costs(inputs, setting, chunk)
    usable = inputs.gpu.usable_bytes
    capacity = [usable - need for need in nominal_buffers(inputs, setting, chunk_tokens)]
    batch_in, batch_out = batch_bytes(inputs, setting)
    capacity[0] -= batch_in
    capacity[-1] -= batch_out
    return PartitionProblem(
        tuple(c.total_s for c in costs),
        boundary_sizes(inputs, chunk),
        resident_sizes(inputs, setting),
        links(inputs.gpu, setting),
        tuple(max(0.0, room) for room in capacity),  # buffers beyond HBM leave no room
    )


def divisor_ladder(count: int) -> list[int]:
    """For each power of two up to `count`, the largest divisor of `count` not above it."""
    small = [d for d in range(1, math.isqrt(count) + 1) if count % d == 0]
    divisors = sorted(set(small + [count // d for d in small]))
    return sorted({max(d for d in divisors if d <= 2**k) for k in range(count.bit_length() + 1)})


def chunk_candidates(inputs: PlanInputs, setting: Setting, micro_batches: int | Auto) -> list[int]:
    """Chunk sizes in tokens that split the batch's units (tokens or sequences) evenly."""
    unit = chunk_unit(inputs, setting)
    units = setting.sequences * inputs.workload.seq_len // unit
    if micro_batches != "auto":
        return [units // micro_batches * unit]
    return [d * unit for d in divisor_ladder(units)]
