"""The presets' layers, built from megatron-core modules, with weights drawn per (seed, layer).

Every layout builds the same function: a layer's full (TP=1) weights come from a generator seeded
by the run seed and the layer's index only, in a fixed parameter order, on the target device;
under tensor parallelism each rank keeps its slice of them (megatron's column- and row-parallel
split). Tensors between layers: [tokens, hidden] for dense models (any leading dimensions), [seq,
batch, hidden] for gpt models (megatron's sequence-first layout): only plain tensors cross stages.
"""

import copy
import math

import torch
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.process_groups_config import ProcessGroupCollection
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.spec_utils import build_module
from torch import nn

from layerwise.specs import ModelSpec

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def megatron_config(model: ModelSpec, dtype: torch.dtype, on_cpu: bool) -> TransformerConfig:
    """Inference settings: no dropout, no fused kernels (no apex/TE), weights left to us."""
    return TransformerConfig(
        num_layers=model.num_layers,
        hidden_size=model.hidden,
        num_attention_heads=max(1, model.heads),
        kv_channels=model.head_dim or None,
        ffn_hidden_size=model.ffn_hidden or model.hidden,
        params_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        pipeline_dtype=dtype,
        use_cpu_initialization=on_cpu,
        perform_initialization=False,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        gradient_accumulation_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
    )


class SdpaAttention(MegatronModule):
    """Causal core attention on torch's scaled_dot_product_attention, in place of the local
    spec's DotProductAttention, which materialises the s x s scores (27x slower on an H200,
    docs/sources.md)."""

    def __init__(
        self,
        config: TransformerConfig,
        layer_number: int,
        attn_mask_type,
        attention_type: str,
        attention_dropout=None,
        softmax_scale=None,
        cp_comm_type=None,
        pg_collection=None,
    ):
        super().__init__(config=config)
        self.softmax_scale = softmax_scale

    def forward(
        self,
        query,
        key,
        value,
        attention_mask,
        attn_mask_type=None,
        attention_bias=None,
        packed_seq_params=None,
    ):
        """[s, b, heads, dim] each -> [s, b, heads * dim], causal."""
        seq, batch, heads, dim = query.shape
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        out = nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=self.softmax_scale
        )
        return out.permute(2, 0, 1, 3).reshape(seq, batch, heads * dim)


def gpt_layer_spec():
    """megatron-core's local GPT layer spec with SdpaAttention as its core attention."""
    spec = copy.deepcopy(get_gpt_layer_local_spec())
    spec.submodules.self_attention.submodules.core_attention = SdpaAttention
    return spec


class DenseLayer(nn.Module):
    """y = x @ W^T with one hidden x hidden weight. Layers pair up as Megatron's MLP does: even
    layers column-parallel (output left sharded), odd layers row-parallel (one all-reduce), so
    a pair costs one all-reduce under TP and is two plain matmuls at TP=1."""

    def __init__(self, config: TransformerConfig, groups: ProcessGroupCollection, index: int):
        super().__init__()
        width = config.hidden_size
        shared = {"config": config, "init_method": None, "bias": False, "tp_group": groups.tp}
        if index % 2 == 0:
            self.linear = ColumnParallelLinear(width, width, gather_output=False, **shared)
        else:
            self.linear = RowParallelLinear(
                width, width, input_is_parallel=True, skip_bias_add=False, **shared
            )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden)[0]


class GptLayer(nn.Module):
    """A megatron-core TransformerLayer (local spec, SDPA attention) taking and returning one
    [seq, batch, hidden] tensor."""

    def __init__(self, config: TransformerConfig, groups: ProcessGroupCollection, index: int):
        super().__init__()
        self.layer = build_module(
            gpt_layer_spec(), config=config, layer_number=index + 1, pg_collection=groups
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.layer(hidden, attention_mask=None)[0]


def layer_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed * 1_000_003 + index)
    return generator


def full_weights(
    model: ModelSpec,
    seed: int,
    index: int,
    shapes: dict[str, torch.Size],
    dtype: torch.dtype,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The layer's TP=1 parameters, drawn in sorted-name order: matrices ~ N(0, 1/fan_in),
    norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.02)."""
    generator = layer_generator(seed, index, device)
    weights = {}
    for name in sorted(shapes):
        shape = shapes[name]
        draw = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
        if len(shape) == 2:
            draw /= math.sqrt(shape[1])
        elif "layernorm" in name and name.endswith("weight"):
            draw = 1.0 + 0.1 * draw
        else:
            draw *= 0.02
        weights[name] = draw.to(dtype)
    return weights


def tensor_parallel_dims(module: nn.Module) -> dict[str, int]:
    """Parameter name -> the dimension megatron splits across TP ranks: a column-parallel
    linear's weight and bias by output rows (0), a row-parallel linear's weight by input
    columns (1); its bias and every norm are replicated."""
    dims = {}
    for prefix, child in module.named_modules():
        name = f"{prefix}." if prefix else ""
        if isinstance(child, ColumnParallelLinear):
            dims[f"{name}weight"] = dims[f"{name}bias"] = 0
        elif isinstance(child, RowParallelLinear):
            dims[f"{name}weight"] = 1
    return dims


class PresetLayer(nn.Module):
    """Layer `index` of a preset model on this rank of its tensor-parallel group (`groups.tp`);
    what a DeepSpeed LayerSpec or a megatron stage builds."""

    def __init__(
        self,
        model: ModelSpec,
        index: int,
        seed: int,
        dtype: torch.dtype,
        device: torch.device,
        groups: ProcessGroupCollection,
    ):
        super().__init__()
        self.index = index
        config = megatron_config(model, dtype, device.type == "cpu")
        with torch.device(device):
            self.body = (
                DenseLayer(config, groups, index)
                if model.kind == "dense"
                else GptLayer(config, groups, index)
            ).to(dtype)  # megatron builds norms in fp32; its Float16Module would cast them
        tp_size, tp_rank = groups.tp.size(), groups.tp.rank()
        split = tensor_parallel_dims(self.body)
        shapes = {}
        for name, parameter in self.body.named_parameters():
            shape = list(parameter.shape)
            if name in split:
                shape[split[name]] *= tp_size
            shapes[name] = torch.Size(shape)
        weights = full_weights(model, seed, index, shapes, dtype, device)
        with torch.no_grad():
            for name, parameter in self.body.named_parameters():
                full = weights[name]
                if name in split:
                    size = parameter.shape[split[name]]
                    full = full.narrow(split[name], tp_rank * size, size)
                parameter.copy_(full)
        self.body.requires_grad_(False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.body(hidden)
