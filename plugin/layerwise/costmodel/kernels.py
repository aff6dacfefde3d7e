"""Cost model of one GPU's memory hierarchy and links (formulas in docs/cost-model.md).

kernel time  = max(floor, fixed + max(FLOPs / achieved rate(M, K x N),
                                      weight bytes / bw + activation bytes / bw))
               where bw is L2's when the operand is resident in the L2 budget and the profile
               measured L2, HBM's otherwise;
layer time   = max(host, sum of kernels) where the host queues kernels ahead (GPUs),
               host + sum of kernels where it runs them (CPU ranks);
collectives  (all-reduce, all-gather, p2p): collectives.py; pipeline timing over stage times:
               pipeline.py.

Layers are pipeline layers (ModelSpec.role): the token embedding, the blocks, the LM head.
"""

import math
from dataclasses import dataclass
from typing import Literal

from layerwise.costmodel.collectives import allgather_time, allreduce_time, interpolate_log
from layerwise.costmodel.precision import Storage, stored
from layerwise.hardware.spec import HardwareSpec, gemm_shape
from layerwise.model.spec import ModelSpec

KernelKind = Literal["gemm", "attention", "elementwise"]
TOKEN_ID_BYTES = 8  # int64 token ids enter the embedding


@dataclass(frozen=True, kw_only=True)
class Kernel:
    """One kernel of a layer's forward for one chunk; `shape` is a GEMM's weight (K, N).

    Bytes by where they live: weights (L2 when the stage's weights fit its budget), the chunk's
    activation tiles (L2 when they fit), and the KV cache (always HBM: it outgrows any L2).
    """

    name: str
    kind: KernelKind
    flops: float
    weight_bytes: float
    activation_bytes: float
    shape: tuple[int, int] = (0, 0)
    cache_bytes: float = 0.0
    rate_scale: float = 1.0
    """The GEMM rate's multiple: FP8 weights (costmodel/precision.py)."""


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """What one micro-batch asks of a layer: `tokens` rows, made of `sequences` sequences that
    each attend over `context` tokens (prefill: their own causal prefix; decode: the KV cache)."""

    tokens: int
    sequences: int
    context: int
    decode: bool


@dataclass(frozen=True, kw_only=True)
class LayerCost:
    """Seconds one layer spends on one chunk on one GPU of its tensor-parallel group."""

    compute_s: float
    comm_s: float

    @property
    def total_s(self) -> float:
        return self.compute_s + self.comm_s


def nearest_gemm_shape(hardware: HardwareSpec, shape: tuple[int, int]) -> str:
    """The measured "KxN" key closest to `shape` in log K + log N (the shape itself if
    measured; ties go to the larger shape)."""

    def distance(key: str) -> tuple[float, int]:
        rows, cols = gemm_shape(key)
        return abs(math.log(rows / shape[0])) + abs(math.log(cols / shape[1])), -rows * cols

    return min(hardware.gemm_tflops, key=distance)


def gemm_tflops(hardware: HardwareSpec, tokens: int, shape: tuple[int, int]) -> float:
    """Achieved TFLOP/s of X[tokens, K] @ W[K, N]: the nearest measured shape's rates,
    interpolated in log tokens, clamped outside the measured tokens."""
    return interpolate_log(hardware.gemm_tflops[nearest_gemm_shape(hardware, shape)], tokens)


def attention_tflops(hardware: HardwareSpec, context: int) -> float:
    """Causal attention's rate at this sequence length (measured table, else one figure)."""
    if hardware.attention_tflops_by_seq:
        return interpolate_log(hardware.attention_tflops_by_seq, context)
    return hardware.attention_tflops


def kernel_time(
    hardware: HardwareSpec,
    kernel: Kernel,
    tokens: int,
    weights_in_l2: bool,
    activations_in_l2: bool,
    context: int = 0,
) -> float:
    """max(floor, fixed + max(compute time, memory time)) for one kernel; attention's rate is
    read at sequence length `context`."""
    hbm = hardware.hbm_gbs
    if kernel.kind == "gemm":
        rate = gemm_tflops(hardware, tokens, kernel.shape) * kernel.rate_scale
        floor = hardware.gemm_floor_us
    elif kernel.kind == "attention":
        rate, floor = attention_tflops(hardware, context), hardware.kernel_floor_us
    else:
        rate, floor = math.inf, hardware.kernel_floor_us
        hbm = hardware.elementwise_gbs or hbm
    l2 = hardware.l2_gbs or hbm
    memory_s = (
        kernel.weight_bytes / (l2 if weights_in_l2 else hbm)
        + kernel.activation_bytes / (l2 if activations_in_l2 else hbm)
        + kernel.cache_bytes / hardware.hbm_gbs
    ) / 1e9
    work = max(kernel.flops / (rate * 1e12), memory_s)
    return max(floor * 1e-6, hardware.kernel_fixed_us * 1e-6 + work)


def layer_time(hardware: HardwareSpec, key: str, decode: bool, kernels_s: float) -> float:
    """One layer's forward: its kernels and the host's work around them (layer_host_us; a
    decode step's own figure where measured), in parallel where the host queues kernels ahead
    of the device, else one after the other."""
    host = hardware.layer_host_us
    host_s = host.get(f"{key}_decode" if decode else key, host.get(key, 0.0)) * 1e-6
    return max(host_s, kernels_s) if hardware.host_overlaps_device else host_s + kernels_s


def _gemm(name: str, tokens: int, rows: int, cols: int, dtype_bytes: int) -> Kernel:
    """X[tokens, rows] @ W[rows, cols]."""
    return Kernel(
        name=name,
        kind="gemm",
        flops=2.0 * tokens * rows * cols,
        weight_bytes=float(rows * cols * dtype_bytes),
        activation_bytes=float(tokens * (rows + cols) * dtype_bytes),
        shape=(rows, cols),
    )


def _elementwise(name: str, tokens: int, width: int, passes: int, dtype_bytes: int) -> Kernel:
    """`passes` full reads or writes of a [tokens, width] tensor."""
    moved = float(passes * tokens * width * dtype_bytes)
    return Kernel(
        name=name, kind="elementwise", flops=0.0, weight_bytes=0.0, activation_bytes=moved
    )


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
    """Scores over the `heads` query heads (a = heads x head_dim); K and V are kv_width wide."""
    a, kv, b = model.attention_width // tp, model.kv_width // tp, dtype_bytes
    if chunk.decode:  # each new token reads its sequence's whole K and V cache
        flops = 4.0 * chunk.sequences * chunk.context * a
        cache = 2.0 * chunk.sequences * chunk.context * kv * b
        moved = chunk.sequences * (2 * a + 2 * kv) * b  # read q, write o, append k and v
        return Kernel(
            name="attention",
            kind="attention",
            flops=flops,
            weight_bytes=0.0,
            activation_bytes=float(moved),
            cache_bytes=cache,
        )
    # causal: half of the s x s score matrix, QK^T and PV; reads Q, K, V, writes O and the KV cache
    flops = 2.0 * chunk.sequences * chunk.context**2 * a
    moved = chunk.tokens * (2 * a + 4 * kv) * b
    return Kernel(
        name="attention",
        kind="attention",
        flops=flops,
        weight_bytes=0.0,
        activation_bytes=float(moved),
    )


ROPE_PASSES = 12
"""Full-size reads and writes of megatron-core's unfused rotary embedding of a [s, b, heads, d]
tensor: rotate_half's negate (1) and cat (2), two multiplies (2 each), the add (3), the
closing cat (2)."""


def _rope(chunk: Chunk, q_width: int, kv_width: int, dtype_bytes: int) -> Kernel:
    """Rotary embedding of the queries and of the keys. megatron-core's static-batching cache
    keeps keys unrotated and rotates the whole cached K at every decode step (its flash-decode
    path, which needs flash-attn, stores them rotated), so a decode step rotates context x kv
    per sequence, not one token's."""
    keys = chunk.sequences * chunk.context if chunk.decode else chunk.tokens
    elements = chunk.tokens * q_width + keys * kv_width
    moved = float(ROPE_PASSES * elements * dtype_bytes)
    return Kernel(
        name="rope", kind="elementwise", flops=0.0, weight_bytes=0.0, activation_bytes=moved
    )


def gpt_kernels(model: ModelSpec, chunk: Chunk, tp: int, dtype_bytes: int) -> list[Kernel]:
    """Pre-norm transformer block, Megatron's column/row split of attention and MLP: QKV is
    a + 2 kv wide, a gated MLP's fc1 2 f wide (gate and up), each divided by the TP degree."""
    h, m, b = model.hidden, chunk.tokens, dtype_bytes
    a, kv, f = model.attention_width // tp, model.kv_width // tp, model.ffn_hidden // tp
    up = 2 * f if model.gated_mlp else f
    kernels = [_elementwise(f"{model.norm}_1", m, h, 2, b), _gemm("qkv", m, h, a + 2 * kv, b)]
    if model.rope:
        kernels.append(_rope(chunk, a, kv, b))
    kernels += [
        _attention(model, chunk, tp, b),
        _gemm("attention_proj", m, a, h, b),
        _elementwise("residual_1", m, h, 3, b),
        _elementwise(f"{model.norm}_2", m, h, 2, b),
        _gemm("mlp_fc1", m, h, up, b),
    ]
    if model.gated_mlp:  # silu(gate) * up: read 2 f, write f
        kernels.append(_elementwise("swiglu", m, f, 3, b))
    else:
        kernels.append(_elementwise("gelu", m, f, 2, b))
    return kernels + [_gemm("mlp_fc2", m, f, h, b), _elementwise("residual_2", m, h, 3, b)]


def embedding_kernels(model: ModelSpec, tokens: int, tp: int, dtype_bytes: int) -> list[Kernel]:
    """A row gather: read tokens x hidden from the table, write tokens x hidden. Under TP each
    rank holds vocab/tp rows and writes the whole output, zeros outside its rows (megatron's
    VocabParallelEmbedding), before one all-reduce."""
    return [_elementwise("embedding", tokens, model.hidden, 2, dtype_bytes)]


def head_kernels(model: ModelSpec, tokens: int, tp: int, dtype_bytes: int) -> list[Kernel]:
    """Final norm, then the vocabulary projection hidden -> vocab/tp (ColumnParallelLinear), of
    `tokens` = each sequence's last position (megatron's materialize_only_last_token_logits)."""
    return [
        _elementwise(f"{model.norm}_final", tokens, model.hidden, 2, dtype_bytes),
        _gemm("lm_head", tokens, model.hidden, model.vocab_size // tp, dtype_bytes),
    ]


def layer_kernels(
    model: ModelSpec, layer: int, chunk: Chunk, tp: int, dtype_bytes: int
) -> list[Kernel]:
    """The kernels of pipeline layer `layer` for one chunk on one GPU of a `tp`-wide group."""
    role, block = model.role(layer)
    if role == "embedding":
        return embedding_kernels(model, chunk.tokens, tp, dtype_bytes)
    if role == "head":
        return head_kernels(model, chunk.sequences, tp, dtype_bytes)
    if model.kind == "dense":
        return dense_kernels(model, block, chunk.tokens, tp, dtype_bytes)
    return gpt_kernels(model, chunk, tp, dtype_bytes)


def allreduces_per_layer(model: ModelSpec, layer: int, tp: int) -> int:
    """All-reduces of tokens x hidden under TP: the embedding 1, a gpt block 2 (attention and
    MLP), an odd dense layer 1, the LM head none (it all-gathers its logits instead)."""
    role, block = model.role(layer)
    if tp == 1 or role == "head":
        return 0
    if role == "embedding":
        return 1
    if model.kind == "dense":
        return block % 2
    return 2


def boundary_bytes(model: ModelSpec, layer: int, chunk: Chunk, dtype_bytes: int) -> float:
    """Bytes entering pipeline layer `layer` (= pipeline_layers: leaving the last): token ids
    (tokens x 8) into the embedding, logits of each sequence's last position (sequences x
    vocab x b) out of the head, else hidden states (tokens x hidden x b)."""
    tokens = chunk.tokens
    if model.vocab_size and layer == 0:
        return float(tokens * TOKEN_ID_BYTES)
    if model.vocab_size and layer == model.pipeline_layers:
        return float(chunk.sequences * model.vocab_size * dtype_bytes)
    return float(tokens * model.hidden * dtype_bytes)


def layer_comm_time(
    model: ModelSpec, hardware: HardwareSpec, layer: int, chunk: Chunk, tp: int, dtype_bytes: int
) -> float:
    """TP collectives of one layer: its all-reduces of tokens x hidden x b, and the head's
    all-gather of sequences x vocab x b logits (last positions) to every rank."""
    if tp == 1:
        return 0.0
    link = hardware.intra_node if tp <= hardware.gpus_per_node else hardware.inter_node
    if model.role(layer)[0] == "head":
        return allgather_time(link, chunk.sequences * model.vocab_size * dtype_bytes, tp)
    message = chunk.tokens * model.hidden * dtype_bytes
    return allreduces_per_layer(model, layer, tp) * allreduce_time(link, message, tp)


def layer_cost(
    model: ModelSpec,
    hardware: HardwareSpec,
    layer: int,
    chunk: Chunk,
    tp: int,
    dtype_bytes: int,
    l2_budget_bytes: float,
    weights_in_l2: bool = False,
    storage: Storage | None = None,
) -> LayerCost:
    """Pipeline layer `layer`, one chunk, on one GPU of a `tp`-wide group, host time included;
    activations count as L2-resident when the layer's input and output tiles fit the L2 budget
    together; weights and KV cache in `storage`'s dtypes where given."""
    kernels = stored(layer_kernels(model, layer, chunk, tp, dtype_bytes), dtype_bytes, storage)
    tile_bytes = boundary_bytes(model, layer, chunk, dtype_bytes) + boundary_bytes(
        model, layer + 1, chunk, dtype_bytes
    )
    activations_in_l2 = tile_bytes <= l2_budget_bytes
    kernels_s = sum(
        kernel_time(hardware, k, chunk.tokens, weights_in_l2, activations_in_l2, chunk.context)
        for k in kernels
    )
    comm = layer_comm_time(model, hardware, layer, chunk, tp, dtype_bytes)
    compute = layer_time(hardware, model.host_key(layer), chunk.decode, kernels_s)
    return LayerCost(compute_s=compute, comm_s=comm)


def layer_weight_bytes(model: ModelSpec, layer: int, tp: int, dtype_bytes: int) -> float:
    """Weights of pipeline layer `layer` on one GPU: layer_params / tp x b (the embedding and
    head split vocab-wise, blocks by Megatron's column/row split)."""
    return model.layer_params(layer) / tp * dtype_bytes


def kv_bytes_per_token(model: ModelSpec, tp: int, dtype_bytes: int) -> float:
    """K and V of one token in one block on one GPU of the TP group: 2 x kv_width / tp x b
    (0 for dense layers; the embedding and head hold no cache)."""
    return 2.0 * model.kv_width / tp * dtype_bytes if model.kind == "gpt" else 0.0


def layer_kv_bytes_per_token(model: ModelSpec, layer: int, tp: int, dtype_bytes: int) -> float:
    """kv_bytes_per_token for a block, 0 for the embedding and the LM head."""
    return kv_bytes_per_token(model, tp, dtype_bytes) if model.role(layer)[0] == "block" else 0.0


def workspace_bytes(model: ModelSpec, layer: int, tokens: int, tp: int, dtype_bytes: int) -> float:
    """Transient tensors inside one layer's forward for a chunk: a gpt block's QKV (a + 2 kv),
    attention output (a), MLP hidden (f, gated 2 f + f) per TP rank and one hidden-wide tensor;
    the embedding's output before its all-reduce; the head's normed input and logits shard."""
    role, _ = model.role(layer)
    if role == "head":
        return float(tokens * (model.hidden + model.vocab_size // tp) * dtype_bytes)
    if role == "embedding" or model.kind == "dense":
        return float(tokens * model.hidden * dtype_bytes)
    a, kv, f = model.attention_width // tp, model.kv_width // tp, model.ffn_hidden // tp
    mlp = 3 * f if model.gated_mlp else f
    return float(tokens * (2 * a + 2 * kv + mlp + model.hidden) * dtype_bytes)


def block_matmul_params(model: ModelSpec) -> int:
    """Weights a gpt block multiplies each token by: h(a + 2 kv) + a h + h up + f h."""
    h, a, kv, f = model.hidden, model.attention_width, model.kv_width, model.ffn_hidden
    up = 2 * f if model.gated_mlp else f
    return h * (a + 2 * kv) + a * h + h * up + f * h


def layer_flops(model: ModelSpec, seq_len: int, layer: int) -> float:
    """FLOPs per token of pipeline layer `layer`'s prefill forward: embedding 0, head
    2 hidden vocab / s (last positions only), dense 2 h^2, gpt block 2 x matmul weights + 2 s a
    (causal attention at half)."""
    role, _ = model.role(layer)
    if role == "embedding":
        return 0.0
    if role == "head":
        return 2.0 * model.hidden * model.vocab_size / seq_len
    if model.kind == "dense":
        return 2.0 * model.hidden**2
    return 2.0 * block_matmul_params(model) + 2.0 * seq_len * model.attention_width


def model_flops(model: ModelSpec, seq_len: int) -> float:
    """FLOPs per token of the whole prefill forward: the sum over pipeline layers."""
    first_block = 1 if model.vocab_size else 0
    blocks = model.num_layers * layer_flops(model, seq_len, first_block)
    if not model.vocab_size:
        return blocks
    return blocks + layer_flops(model, seq_len, model.pipeline_layers - 1)
