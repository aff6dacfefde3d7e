"""The presets' layers: megatron-core modules, deterministic weights, faithful SDPA attention."""

import pytest
import torch

from layerwise.runtime.model import PresetLayer, chunk_input, megatron_config
from layerwise.specs import MODEL_PRESETS

CPU = torch.device("cpu")


def build(name, index, groups, seed=1234):
    return PresetLayer(MODEL_PRESETS[name], index, seed, torch.float32, CPU, groups)


@pytest.mark.parametrize("name", ["mock-dense", "mock-gpt"])
def test_weights_depend_on_seed_and_index_only(groups, name):
    first, again = build(name, 3, groups), build(name, 3, groups)
    other_layer, other_seed = build(name, 4, groups), build(name, 3, groups, seed=99)
    for a, b, c, d in zip(
        first.parameters(), again.parameters(), other_layer.parameters(), other_seed.parameters()
    ):
        assert torch.equal(a, b)
        assert not torch.equal(a, c) and not torch.equal(a, d)


def test_dense_layer_is_one_matmul(groups):
    layer = build("mock-dense", 0, groups)
    x = chunk_input(MODEL_PRESETS["mock-dense"], 1234, 0, 5, 1, torch.float32, CPU)
    weight = dict(layer.named_parameters())["body.linear.weight"]
    assert torch.allclose(layer(x), x @ weight.T, atol=1e-6)


def test_sdpa_attention_equals_megatrons_dot_product_attention(groups):
    """Our core attention against the local spec's own DotProductAttention (causal mask)."""
    from megatron.core import parallel_state
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    from layerwise.runtime.model import SdpaAttention

    model = MODEL_PRESETS["mock-gpt"]
    config = megatron_config(model, torch.float32, on_cpu=True)
    seq, batch = 12, 3
    generator = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(seq, batch, model.heads, model.head_dim, generator=generator) for _ in range(3)
    )
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    # DotProductAttention reads megatron's global state (score buffer, dropout RNG): set it up
    # for this test only.
    parallel_state.initialize_model_parallel(1, 1)
    model_parallel_cuda_manual_seed(0, inference_rng_tracker=True)
    theirs = DotProductAttention(config, 1, AttnMaskType.causal, "self", pg_collection=groups)
    mask = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)[None, None]
    expected = theirs(q, k, v, mask)
    parallel_state.destroy_model_parallel()
    ours = SdpaAttention(config, 1, AttnMaskType.causal, "self")(q, k, v, None)
    assert ours.shape == (seq, batch, model.heads * model.head_dim)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_gpt_layer_is_causal(groups):
    layer = build("mock-gpt", 0, groups)
    x = chunk_input(MODEL_PRESETS["mock-gpt"], 1234, 0, 2, 16, torch.float32, CPU)
    changed = x.clone()
    changed[-1] += 1.0
    with torch.no_grad():
        before, after = layer(x), layer(changed)
    assert torch.equal(before[:-1], after[:-1]) and not torch.equal(before[-1], after[-1])
