"""Cost model of one GPU's memory hierarchy and links (formulas in docs/cost-model.md).

kernel time  = max(floor, FLOPs / achieved rate(M, width),
                   weight bytes / bw + activation bytes / bw)
               where bw is L2's when the operand is resident in the L2 budget, HBM's otherwise;
all-reduce   = 2(n-1)/n * bytes / busbw(bytes)  (measured table),
               or latency + 2(n-1)/n * bytes / bw;
p2p          = latency + bytes / bw;
pipeline     = sum of stage times + (micro-batches - 1) * slowest stage.
"""

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Literal

from layerwise.specs import HardwareSpec, LinkSpec, ModelSpec

KernelKind = Literal["gemm", "attention", "elementwise"]


@dataclass(frozen=True)
class Kernel:
    """One kernel of a layer's forward for one chunk; `width` is a GEMM's narrow dimension.

    Bytes by where they live: weights (L2 when the stage's weights fit its budget), the chunk's
    activation tiles (L2 when they fit), and the KV cache (always HBM: it outgrows any L2).
    """

    name: str
    kind: KernelKind
    flops: float
    weight_bytes: float
    activation_bytes: float
    width: int = 0
    cache_bytes: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """What one micro-batch asks of a layer: `tokens` rows, made of `sequences` sequences that
    each attend over `context` tokens (prefill: their own causal prefix; decode: the KV cache)."""

    tokens: int
    sequences: int
    context: int
    decode: bool


@dataclass(frozen=True)
class LayerCost:
    """Seconds one layer spends on one chunk on one GPU of its tensor-parallel group."""

    compute_s: float
    comm_s: float

    @property
    def total_s(self) -> float:
        return self.compute_s + self.comm_s


def _interpolate_log(table: dict[int, float], x: float) -> float:
    """Piecewise-linear in log(x), clamped to the end values."""
    keys = sorted(table)
    if x <= keys[0]:
        return table[keys[0]]
    if x >= keys[-1]:
        return table[keys[-1]]
    upper = bisect_left(keys, x)
    x0, x1 = keys[upper - 1], keys[upper]
    weight = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return table[x0] + weight * (table[x1] - table[x0])


def gemm_tflops(hardware: HardwareSpec, tokens: int, width: int) -> float:
    """Achieved TFLOP/s of a compute-bound GEMM: by tokens within each measured width, then
    interpolated between widths (log), clamped outside the measured range."""
    by_width = {w: _interpolate_log(rates, tokens) for w, rates in hardware.gemm_tflops.items()}
    return _interpolate_log(by_width, width)


def kernel_time(
    hardware: HardwareSpec,
    kernel: Kernel,
    tokens: int,
    weights_in_l2: bool,
    activations_in_l2: bool,
) -> float:
    """max(floor, compute time, memory time) for one kernel."""
    if kernel.kind == "gemm":
        rate, floor = gemm_tflops(hardware, tokens, kernel.width), hardware.gemm_floor_us
    elif kernel.kind == "attention":
        rate, floor = hardware.attention_tflops, hardware.kernel_floor_us
    else:
        rate, floor = math.inf, hardware.kernel_floor_us
    weight_bw = hardware.l2_gbs if weights_in_l2 else hardware.hbm_gbs
    activation_bw = hardware.l2_gbs if activations_in_l2 else hardware.hbm_gbs
    memory_s = (
        kernel.weight_bytes / weight_bw
        + kernel.activation_bytes / activation_bw
        + kernel.cache_bytes / hardware.hbm_gbs
    ) / 1e9
    return max(floor * 1e-6, kernel.flops / (rate * 1e12), memory_s)


def allreduce_time(link: LinkSpec, num_bytes: float, group_size: int) -> float:
    """Ring all-reduce of `num_bytes` over `group_size` GPUs (nccl-tests bus-bandwidth model)."""
    if group_size <= 1 or num_bytes <= 0:
        return 0.0
    traffic = 2 * (group_size - 1) / group_size * num_bytes
    if link.allreduce_busbw_measured_gbs:
        busbw = _interpolate_log(link.allreduce_busbw_measured_gbs, num_bytes)
        return traffic / (busbw * 1e9)
    return link.allreduce_latency_us * 1e-6 + traffic / (link.allreduce_busbw_gbs * 1e9)


def p2p_time(link: LinkSpec, num_bytes: float) -> float:
    return link.p2p_latency_us * 1e-6 + num_bytes / (link.p2p_gbs * 1e9)


def _gemm(name: str, tokens: int, rows: int, cols: int, dtype_bytes: int) -> Kernel:
    """X[tokens, rows] @ W[rows, cols]."""
    return Kernel(
        name,
        "gemm",
        2.0 * tokens * rows * cols,
        float(rows * cols * dtype_bytes),
        float(tokens * (rows + cols) * dtype_bytes),
        min(rows, cols),
    )


def _elementwise(name: str, tokens: int, width: int, passes: int, dtype_bytes: int) -> Kernel:
    """`passes` full reads or writes of a [tokens, width] tensor."""
    return Kernel(name, "elementwise", 0.0, 0.0, float(passes * tokens * width * dtype_bytes))


def dense_kernels(
    model: ModelSpec, layer: int, tokens: int, tp: int, dtype_bytes: int
) -> list[Kernel]:
    """Under tensor parallelism, dense layers pair up as Megatron's MLP does: even layers are
    column-parallel (output stays sharded), odd layers row-parallel (then one all-reduce)."""
    h = model.hidden
    if tp > 1 and layer % 2 == 0:
        return [_gemm("linear_column", tokens, h, h // tp, dtype_bytes)]
    if tp > 1:
        return [_gemm("linear_row", tokens, h // tp, h, dtype_bytes)]
    return [_gemm("linear", tokens, h, h, dtype_bytes)]


def _attention(model: ModelSpec, chunk: Chunk, tp: int, dtype_bytes: int) -> Kernel:
    width = model.attention_width // tp
    if chunk.decode:  # each new token reads its sequence's whole K and V cache
        flops = 4.0 * chunk.sequences * chunk.context * width
        cache = 2.0 * chunk.sequences * chunk.context * width * dtype_bytes
        moved = 4 * chunk.sequences * width * dtype_bytes
        return Kernel("attention", "attention", flops, 0.0, float(moved), cache_bytes=cache)
    # causal: half of the s x s score matrix, QK^T and PV; reads Q, K, V, writes O and the KV cache
    flops = 2.0 * chunk.sequences * chunk.context**2 * width
    return Kernel(
        "attention", "attention", flops, 0.0, float(6 * chunk.tokens * width * dtype_bytes)
    )


def gpt_kernels(model: ModelSpec, chunk: Chunk, tp: int, dtype_bytes: int) -> list[Kernel]:
    """Pre-norm transformer layer, Megatron's column/row split of attention and MLP."""
    h, a, f, m, b = (
        model.hidden,
        model.attention_width // tp,
        model.ffn_hidden // tp,
        chunk.tokens,
        dtype_bytes,
    )
    return [
        _elementwise("layernorm_1", m, h, 2, b),
        _gemm("qkv", m, h, 3 * a, b),
        _attention(model, chunk, tp, b),
        _gemm("attention_proj", m, a, h, b),
        _elementwise("residual_1", m, h, 3, b),
        _elementwise("layernorm_2", m, h, 2, b),
        _gemm("mlp_fc1", m, h, f, b),
        _elementwise("gelu", m, f, 2, b),
        _gemm("mlp_fc2", m, f, h, b),
        _elementwise("residual_2", m, h, 3, b),
    ]


def allreduces_per_layer(model: ModelSpec, layer: int, tp: int) -> int:
    if tp == 1:
        return 0
    if model.kind == "dense":
        return layer % 2
    return 2


def layer_cost(
    model: ModelSpec,
    hardware: HardwareSpec,
    layer: int,
    chunk: Chunk,
    tp: int,
    dtype_bytes: int,
    l2_budget_bytes: float,
    weights_in_l2: bool = False,
) -> LayerCost:
    """One layer, one chunk, on one GPU of a `tp`-wide group; activations count as L2-resident
    when the layer's input and output tiles fit the L2 budget together."""
    if model.kind == "dense":
        kernels = dense_kernels(model, layer, chunk.tokens, tp, dtype_bytes)
    else:
        kernels = gpt_kernels(model, chunk, tp, dtype_bytes)
    tile_bytes = 2 * chunk.tokens * model.hidden * dtype_bytes
    activations_in_l2 = tile_bytes <= l2_budget_bytes
    compute = sum(
        kernel_time(hardware, k, chunk.tokens, weights_in_l2, activations_in_l2) for k in kernels
    )
    link = hardware.intra_node if tp <= hardware.gpus_per_node else hardware.inter_node
    message = chunk.tokens * model.hidden * dtype_bytes
    comm = allreduces_per_layer(model, layer, tp) * allreduce_time(link, message, tp)
    return LayerCost(compute, comm)


def layer_weight_bytes(model: ModelSpec, tp: int, dtype_bytes: int) -> float:
    return model.block_params / tp * dtype_bytes


def kv_bytes_per_token(model: ModelSpec, tp: int, dtype_bytes: int) -> float:
    """K and V of one token in one layer on one GPU of the TP group (0 for dense layers)."""
    return 2.0 * model.attention_width / tp * dtype_bytes if model.kind == "gpt" else 0.0


def workspace_bytes(model: ModelSpec, tokens: int, tp: int, dtype_bytes: int) -> float:
    """Transient tensors inside one layer's forward for a chunk (QKV, attention out, MLP hidden)."""
    if model.kind == "dense":
        return float(tokens * model.hidden * dtype_bytes)
    widths = 4 * model.attention_width // tp + model.ffn_hidden // tp + model.hidden
    return float(tokens * widths * dtype_bytes)


def layer_flops(model: ModelSpec, seq_len: int) -> float:
    """FLOPs per token of one layer's prefill forward (causal attention counted at half)."""
    if model.kind == "dense":
        return 2.0 * model.hidden**2
    weights = model.block_params - 4 * model.hidden
    return 2.0 * weights + 2.0 * seq_len * model.attention_width


def pipeline_time(stage_times: list[float], micro_batches: int) -> float:
    """Synchronous pipeline: the first chunk crosses every stage, the rest follow one per period."""
    return sum(stage_times) + (micro_batches - 1) * max(stage_times)


def bubble_fraction(stage_times: list[float], micro_batches: int) -> float:
    """Share of the batch time the slowest stage waits for fill and drain: (S-1)/(m+S-1) when
    stages are balanced."""
    slowest = max(stage_times)
    return 1.0 - micro_batches * slowest / pipeline_time(stage_times, micro_batches)


def utilisation(stage_times: list[float], micro_batches: int) -> float:
    """Busy share of all stages' time: below 1 - bubble when stages are unbalanced."""
    busy = micro_batches * sum(stage_times)
    return busy / (len(stage_times) * pipeline_time(stage_times, micro_batches))
