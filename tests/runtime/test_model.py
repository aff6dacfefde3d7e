"""The presets' layers: megatron-core modules, deterministic weights, faithful SDPA attention,
tensor-parallel shards cut from the same full weights."""

import pytest
import torch

from layerwise.model.spec import MODEL_PRESETS
from layerwise.runtime.inputs import draw
from layerwise.runtime.model import PresetLayer, megatron_config, tensor_parallel_dims

CPU = torch.device("cpu")


def build(name, index, groups, seed=1234):
    return PresetLayer(MODEL_PRESETS[name], index, seed, torch.float32, CPU, groups)


class ShardOf:
    """A stand-in tensor-parallel group (size, rank) for building one shard in one process:
    building a layer runs no collective."""

    def __init__(self, size: int, rank: int):
        self._size, self._rank = size, rank

    def size(self) -> int:
        return self._size

    def rank(self) -> int:
        return self._rank


def with_tp(groups, size, rank):
    return type(groups)(
        tp=ShardOf(size, rank),
        pp=groups.pp,
        cp=groups.cp,
        dp_cp=groups.dp_cp,
        embd=None,
        pos_embd=None,
    )


@pytest.mark.parametrize("name", ["mock-dense", "mock-gpt"])
def test_weights_depend_on_seed_and_index_only(groups, name):
    first, again = build(name, 3, groups), build(name, 3, groups)
    other_layer, other_seed = build(name, 4, groups), build(name, 3, groups, seed=99)
    for a, b, c, d in zip(
        first.parameters(), again.parameters(), other_layer.parameters(), other_seed.parameters()
    ):
        assert torch.equal(a, b)
        assert not torch.equal(a, c) and not torch.equal(a, d)


@pytest.mark.parametrize("index", [0, 1])
def test_dense_layer_is_one_matmul_column_or_row_parallel(groups, index):
    layer = build("mock-dense", index, groups)
    x = draw(0, 1234, 0, (5, 64), torch.float32, CPU)
    weight = dict(layer.named_parameters())["body.linear.weight"]
    assert torch.allclose(layer(x), x @ weight.T, atol=1e-6)


@pytest.mark.parametrize("size", [2, 4])
def test_gated_fc1_shards_hold_their_slice_of_gate_and_of_up(groups, size):
    """megatron's SwiGLU fc1 shard is [gate_r; up_r], so a rank's rows come from both halves
    of the full [gate; up] weight, not one contiguous block."""
    name, index = "mock-llama", 2
    full = dict(build(name, index, groups).named_parameters())["body.layer.mlp.linear_fc1.weight"]
    gate, up = full.chunk(2)
    width = gate.shape[0] // size
    for rank in range(size):
        shard = PresetLayer(
            MODEL_PRESETS[name], index, 1234, torch.float32, CPU, with_tp(groups, size, rank)
        )
        got = dict(shard.named_parameters())["body.layer.mlp.linear_fc1.weight"]
        rows = slice(rank * width, (rank + 1) * width)
        assert torch.equal(got, torch.cat([gate[rows], up[rows]]))


def test_split_dims_follow_megatrons_column_and_row_parallel_linears(groups):
    gpt = build("mock-gpt", 0, groups).body
    assert tensor_parallel_dims(gpt) == {
        "layer.self_attention.linear_qkv.weight": 0,
        "layer.self_attention.linear_qkv.bias": 0,
        "layer.self_attention.linear_proj.weight": 1,
        "layer.mlp.linear_fc1.weight": 0,
        "layer.mlp.linear_fc1.bias": 0,
        "layer.mlp.linear_fc2.weight": 1,
    }
    assert tensor_parallel_dims(build("mock-dense", 0, groups).body) == {
        "linear.weight": 0,
        "linear.bias": 0,
    }
    assert tensor_parallel_dims(build("mock-dense", 1, groups).body) == {"linear.weight": 1}


@pytest.mark.parametrize(
    "name, index",
    [("mock-gpt", 2), ("mock-dense", 2), ("mock-dense", 3), ("mock-llama", 0), ("mock-llama", 7)],
)
@pytest.mark.parametrize("size", [2, 4])
def test_tensor_parallel_shards_are_slices_of_the_full_layer(groups, name, index, size):
    """Embedding and LM head (mock-llama 0 and 7): vocabulary rows; blocks: megatron's split."""
    full = dict(build(name, index, groups).named_parameters())
    split = tensor_parallel_dims(build(name, index, groups).body)
    for rank in range(size):
        shard = PresetLayer(
            MODEL_PRESETS[name], index, 1234, torch.float32, CPU, with_tp(groups, size, rank)
        )
        for key, value in shard.named_parameters():
            dim = split.get(key.removeprefix("body."))
            assert dim is not None or "norm." in key or key.endswith(("proj.bias", "fc2.bias")), key
            if dim is None:
                assert torch.equal(value, full[key]), key
            else:
                width = full[key].shape[dim] // size
                assert value.shape[dim] == width
                assert torch.equal(value, full[key].narrow(dim, rank * width, width)), key


@pytest.mark.parametrize("name", ["mock-gpt", "mock-llama"])
@pytest.mark.parametrize("queries", [12, 1])
def test_sdpa_attention_equals_megatrons_dot_product_attention(groups, name, queries):
    """Our core attention against the local spec's own DotProductAttention: a causal prompt
    (12 queries over 12 keys), or one decode query over 12 cached keys unmasked, as megatron's
    cache handling calls it; mock-llama's K and V have 2 heads for 8 query heads (GQA)."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    from layerwise.runtime.model import SdpaAttention

    model = MODEL_PRESETS[name]
    config = megatron_config(model, torch.float32, on_cpu=True)
    keys, batch = 12, 3
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(queries, batch, model.heads, model.head_dim, generator=generator)
    k, v = (
        torch.randn(keys, batch, model.kv_heads, model.head_dim, generator=generator)
        for _ in range(2)
    )
    mask_type = AttnMaskType.causal if queries == keys else AttnMaskType.no_mask
    # DotProductAttention reads megatron's global state (score buffer, dropout RNG): set it up
    # for this test only.
    parallel_state.initialize_model_parallel(1, 1)
    model_parallel_cuda_manual_seed(0, inference_rng_tracker=True)
    theirs = DotProductAttention(config, 1, AttnMaskType.causal, "self", pg_collection=groups)
    mask = torch.ones(queries, keys, dtype=torch.bool).triu(1 if queries == keys else keys)
    mask = mask[None, None]  # all False for the decode query: it sees every cached key
    expected = theirs(q, k, v, mask, attn_mask_type=mask_type)
    parallel_state.destroy_model_parallel()
    ours = SdpaAttention(config, 1, AttnMaskType.causal, "self")(
        q, k, v, None, attn_mask_type=mask_type
    )
    assert ours.shape == (queries, batch, model.heads * model.head_dim)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_gpt_layer_is_causal(groups):
    layer = build("mock-gpt", 0, groups)
    x = draw(0, 1234, 0, (16, 2, 64), torch.float32, CPU)
    changed = x.clone()
    changed[-1] += 1.0
    with torch.no_grad():
        before, after = layer(x), layer(changed)
    assert torch.equal(before[:-1], after[:-1]) and not torch.equal(before[-1], after[-1])


@pytest.mark.parametrize("name", ["mock-dense", "mock-gpt", "mock-llama"])
def test_bf16_layer_holds_bf16_parameters_and_tracks_fp32(groups, name):
    """Every parameter (norms included: megatron builds them in fp32) takes the run's dtype, so
    a bf16 activation meets bf16 weights, and the layer computes what its fp32 twin does."""
    low = PresetLayer(MODEL_PRESETS[name], 2, 1234, torch.bfloat16, CPU, groups)
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    shape = (5, 64) if name == "mock-dense" else (6, 2, 64)
    x = draw(0, 1234, 0, shape, torch.float32, CPU)
    reference = build(name, 2, groups)(x)
    assert torch.allclose(low(x.bfloat16()).float(), reference, atol=0.1, rtol=0.05)


def test_cached_decode_equals_recomputing_the_whole_sequence(groups):
    """mock-llama (embedding, GQA 4:1, SwiGLU, RMSNorm, RoPE, tied head) with megatron's static
    KV cache, two sequences fed as two micro-batches of one row, decode steps streamed: each
    step's logits equal a cache-free forward over prompt + the tokens so far (so the cache rows,
    positions and rotary offsets are right)."""
    from layerwise.runtime.kv_cache import KVCache
    from layerwise.runtime.model import rotary_table

    model = MODEL_PRESETS["mock-llama"]
    prompt_len, steps, rows = 5, 3, 2
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randint(model.vocab_size, (prompt_len + steps, rows), generator=generator)
    cache = KVCache(rows, prompt_len + steps, rotary_table(model, prompt_len + steps, True))

    def layers(kv):
        return [
            PresetLayer(model, i, 1234, torch.float32, CPU, groups, kv)
            for i in range(model.pipeline_layers)
        ]

    def run(stack, ids):
        for layer in stack:
            ids = layer(ids)
        return ids

    cached, plain = layers(cache), layers(None)
    cache.start(0, rows)
    for row in range(rows):
        run(cached, tokens[:prompt_len, row : row + 1])
    cache.start(prompt_len, rows)  # every step streamed: the k-th call is row k % 2, step k // 2
    for step in range(steps):
        position = prompt_len + step
        for row in range(rows):
            got = run(cached, tokens[position : position + 1, row : row + 1])
            expected = run(plain, tokens[: position + 1, row : row + 1])
            assert got.shape == (1, 1, model.vocab_size)
            assert torch.allclose(got, expected, atol=1e-5), (step, row)
    other_row = run(plain, tokens[: prompt_len + 1, :1])
    assert not torch.allclose(other_row, run(plain, tokens[: prompt_len + 1, 1:]))


@pytest.mark.parametrize("size", [1, 2])
def test_tied_lm_head_holds_the_embeddings_weight(groups, size):
    """mock-llama ties its head to its embedding: on every TP rank the head's slice of the
    output weight is the embedding's slice of the same vocabulary rows."""
    model = MODEL_PRESETS["mock-llama"]
    for rank in range(size):
        shard = with_tp(groups, size, rank) if size > 1 else groups
        embedding, head = (
            PresetLayer(model, index, 1234, torch.float32, CPU, shard)
            for index in (0, model.pipeline_layers - 1)
        )
        table = dict(embedding.named_parameters())["body.embedding.weight"]
        output = dict(head.named_parameters())["body.output.weight"]
        assert table.shape == (model.vocab_size // size, model.hidden)
        assert torch.equal(output, table)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"qkv_bias": True},
        {"bias": True},
        {"gated_mlp": False, "norm": "layernorm"},
        {"query_groups": 8},
    ],
)
def test_built_layers_hold_the_parameters_the_planner_counts(groups, changes):
    """ModelSpec.layer_params (what the planner prices) against the megatron-core modules the
    runtime builds, for each pipeline layer of mock-llama variants."""
    import dataclasses

    model = dataclasses.replace(MODEL_PRESETS["mock-llama"], **changes)
    for index in (0, 1, model.pipeline_layers - 1):
        layer = PresetLayer(model, index, 1234, torch.float32, CPU, groups)
        assert sum(p.numel() for p in layer.parameters()) == model.layer_params(index), index


def test_llama3_rope_scaling_slows_only_the_low_frequencies():
    """rope_llama3_factor = 8 (Llama 3.1): megatron-core's scaling keeps the fastest rotation
    and divides the slowest by the factor."""
    import dataclasses

    from layerwise.runtime.model import rotary_table

    plain = dataclasses.replace(MODEL_PRESETS["llama-3.1-8b"], rope_llama3_factor=0.0)
    scaled = MODEL_PRESETS["llama-3.1-8b"]
    base, llama3 = rotary_table(plain, 4, True), rotary_table(scaled, 4, True)
    half = scaled.head_dim // 2
    assert torch.equal(llama3[:, ..., 0], base[:, ..., 0])
    assert torch.allclose(llama3[:, ..., half - 1], base[:, ..., half - 1] / 8)
