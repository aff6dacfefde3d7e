"""The presets' layers, built from megatron-core modules, with weights drawn per (seed, layer).

Every layout builds the same function: a layer's full (TP=1) weights come from a generator seeded
by the run seed and the layer's pipeline index only, in a fixed parameter order, on the target
device; under tensor parallelism each rank keeps its slice of them (megatron's column- and
row-parallel split). Tensors between layers: [tokens, hidden] for dense models (any leading
dimensions), [seq, batch, hidden] for gpt models (megatron's sequence-first layout); a vocabulary
model takes token ids [seq, batch] into its embedding and gives the last position's logits
[1, batch, vocab] from its LM head (megatron's materialize_only_last_token_logits).
"""

import copy
import math

import torch
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.process_groups_config import ProcessGroupCollection
from megatron.core.tensor_parallel import (
    ColumnParallelLinear,
    RowParallelLinear,
    VocabParallelEmbedding,
)
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.spec_utils import build_module
from megatron.core.transformer.torch_norm import WrappedTorchNorm
from torch import nn

from layerwise.model.spec import ModelSpec
from layerwise.planner.assignment import RankAssignment
from layerwise.runtime.kv_cache import KVCache

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
NORMALIZATION = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}


def megatron_config(model: ModelSpec, dtype: torch.dtype, on_cpu: bool) -> TransformerConfig:
    """Inference settings: no dropout, no fused kernels (no apex/TE), weights left to us."""
    return TransformerConfig(
        num_layers=model.num_layers,
        hidden_size=model.hidden,
        num_attention_heads=max(1, model.heads),
        num_query_groups=model.kv_heads or None,
        kv_channels=model.head_dim or None,
        ffn_hidden_size=model.ffn_hidden or model.hidden,
        gated_linear_unit=model.gated_mlp,
        activation_func=nn.functional.silu if model.gated_mlp else nn.functional.gelu,
        normalization=NORMALIZATION[model.norm],
        layernorm_epsilon=model.norm_eps,
        add_bias_linear=model.bias,
        add_qkv_bias=model.qkv_bias,
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


def rotary_table(model: ModelSpec, length: int, on_cpu: bool) -> torch.Tensor | None:
    """megatron-core's rotary embedding for positions [0, length): [length, 1, 1, head_dim]."""
    if not model.rope:
        return None
    rotary = RotaryEmbedding(
        kv_channels=model.head_dim,
        rotary_percent=1.0,
        rotary_base=model.rope_base,
        rope_scaling=model.rope_llama3_factor > 0,
        rope_scaling_factor=model.rope_llama3_factor or 8.0,
        use_cpu_initialization=on_cpu,
    )
    return rotary(length)


class SdpaAttention(MegatronModule):
    """Core attention on torch's scaled_dot_product_attention, in place of the local spec's
    DotProductAttention, which materialises the s x s scores (27x slower on an H200,
    docs/sources.md). Causal over a whole prompt; unmasked for decode, where megatron's cache
    handling passes the new token's query against every cached key (AttnMaskType.no_mask).
    Grouped-query attention: K and V keep their kv heads (SDPA's enable_gqa)."""

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
        self.softmax_scale, self.attn_mask_type = softmax_scale, attn_mask_type

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
        """[s, b, heads, dim] queries, [s_kv, b, kv heads, dim] keys and values -> [s, b, heads *
        dim]."""
        seq, batch, heads, dim = query.shape
        causal = (attn_mask_type or self.attn_mask_type) == AttnMaskType.causal
        if causal and key.shape[0] != seq:
            raise ValueError(f"causal attention of {seq} queries over {key.shape[0]} keys")
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        out = nn.functional.scaled_dot_product_attention(
            q,
            k,
            v,
            is_causal=causal and seq > 1,
            scale=self.softmax_scale,
            enable_gqa=key.shape[2] != heads,
        )
        return out.permute(2, 0, 1, 3).reshape(seq, batch, heads * dim)


def gpt_layer_spec(model: ModelSpec):
    """megatron-core's local GPT layer spec with SdpaAttention as its core attention."""
    spec = copy.deepcopy(get_gpt_layer_local_spec(normalization=NORMALIZATION[model.norm]))
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
    [seq, batch, hidden] tensor. With a KVCache, megatron's static-batching cache handling
    stores this layer's K and V and attends over them; without one, a plain causal forward."""

    def __init__(
        self,
        config: TransformerConfig,
        groups: ProcessGroupCollection,
        model: ModelSpec,
        block: int,
        cache: KVCache | None,
    ):
        super().__init__()
        self.model, self.cache, self.layer_number = model, cache, block + 1
        self.on_cpu = config.use_cpu_initialization
        self.layer = build_module(
            gpt_layer_spec(model), config=config, layer_number=block + 1, pg_collection=groups
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            rotary = rotary_table(self.model, hidden.shape[0], self.on_cpu)
            return self.layer(hidden, attention_mask=None, rotary_pos_emb=rotary)[0]
        context = self.cache.enter(self.layer_number, hidden.shape[1])
        return self.layer(
            hidden,
            attention_mask=None,
            inference_context=context,
            rotary_pos_emb=self.cache.rotary,
        )[0]


class Embedding(nn.Module):
    """Token ids [seq, batch] -> [seq, batch, hidden]: megatron's VocabParallelEmbedding (vocab
    rows split across TP ranks, then one all-reduce)."""

    def __init__(self, config: TransformerConfig, groups: ProcessGroupCollection, vocab: int):
        super().__init__()
        self.embedding = VocabParallelEmbedding(
            vocab, config.hidden_size, init_method=None, config=config, tp_group=groups.tp
        )

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(token_ids)


class LmHead(nn.Module):
    """The final norm and the vocabulary projection of the last position: [seq, batch, hidden]
    -> logits [1, batch, vocab], gathered from the TP ranks' vocabulary slices."""

    def __init__(self, config: TransformerConfig, groups: ProcessGroupCollection, vocab: int):
        super().__init__()
        width = config.hidden_size
        self.final_layernorm = WrappedTorchNorm(config, width, eps=config.layernorm_epsilon)
        self.output = ColumnParallelLinear(
            width,
            vocab,
            config=config,
            init_method=None,
            bias=False,
            gather_output=True,
            tp_group=groups.tp,
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.final_layernorm(hidden[-1:]))[0]


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
    columns (1), a vocab-parallel embedding by vocabulary rows (0); row-parallel biases and
    every norm are replicated."""
    dims = {}
    for prefix, child in module.named_modules():
        name = f"{prefix}." if prefix else ""
        if isinstance(child, ColumnParallelLinear):
            dims[f"{name}weight"] = dims[f"{name}bias"] = 0
        elif isinstance(child, RowParallelLinear):
            dims[f"{name}weight"] = 1
        elif isinstance(child, VocabParallelEmbedding):
            dims[f"{name}weight"] = 0
    return dims


def gated_halves(module: nn.Module, config: TransformerConfig) -> set[str]:
    """Parameters whose rows are [gate; up] (a gated MLP's fc1): a TP rank keeps its slice of
    each half, as megatron's fc1 shard is [gate_r; up_r]."""
    if not config.gated_linear_unit:
        return set()
    return {name for name, _ in module.named_parameters() if "linear_fc1" in name}


def shard(full: torch.Tensor, dim: int, size: int, rank: int, halves: bool) -> torch.Tensor:
    """TP rank `rank`'s `size` rows (along `dim`) of a full parameter."""
    if not halves:
        return full.narrow(dim, rank * size, size)
    half = size // 2
    return torch.cat([part.narrow(dim, rank * half, half) for part in full.chunk(2, dim)], dim)


def build_body(
    model: ModelSpec,
    index: int,
    config: TransformerConfig,
    groups: ProcessGroupCollection,
    cache: KVCache | None,
) -> nn.Module:
    """The megatron-core module of pipeline layer `index`."""
    role, block = model.role(index)
    if role == "embedding":
        return Embedding(config, groups, model.vocab_size)
    if role == "head":
        return LmHead(config, groups, model.vocab_size)
    if model.kind == "dense":
        return DenseLayer(config, groups, block)
    return GptLayer(config, groups, model, block, cache)


def stage_cache(
    model: ModelSpec, assignment: RankAssignment, device: torch.device
) -> KVCache | None:
    """A KV cache for this rank's layers of a gpt model: the replica's sequences, prompt plus
    decode steps long."""
    if model.kind != "gpt":
        return None
    length = assignment.cache_length
    return KVCache(assignment.sequences, length, rotary_table(model, length, device.type == "cpu"))


class PresetLayer(nn.Module):
    """Pipeline layer `index` of a preset model on this rank of its tensor-parallel group
    (`groups.tp`); what a DeepSpeed LayerSpec or a megatron stage builds. A tied LM head draws
    the embedding's weight (layer 0's generator), so both hold the same values."""

    def __init__(
        self,
        model: ModelSpec,
        index: int,
        seed: int,
        dtype: torch.dtype,
        device: torch.device,
        groups: ProcessGroupCollection,
        cache: KVCache | None = None,
    ):
        super().__init__()
        self.index = index
        config = megatron_config(model, dtype, device.type == "cpu")
        with torch.device(device):
            # megatron builds norms in fp32; its Float16Module would cast them
            self.body = build_body(model, index, config, groups, cache).to(dtype)
        tp_size, tp_rank = groups.tp.size(), groups.tp.rank()
        split, halves = tensor_parallel_dims(self.body), gated_halves(self.body, config)
        shapes = {}
        for name, parameter in self.body.named_parameters():
            shape = list(parameter.shape)
            if name in split:
                shape[split[name]] *= tp_size
            shapes[name] = torch.Size(shape)
        weights = full_weights(model, seed, index, shapes, dtype, device)
        if model.role(index)[0] == "head" and model.tied_embeddings:
            tied = {"embedding.weight": shapes["output.weight"]}
            weights["output.weight"] = full_weights(model, seed, 0, tied, dtype, device)[
                "embedding.weight"
            ]
        with torch.no_grad():
            for name, parameter in self.body.named_parameters():
                full = weights[name]
                if name in split:
                    size = parameter.shape[split[name]]
                    full = shard(full, split[name], size, tp_rank, name in halves)
                parameter.copy_(full)
        self.body.requires_grad_(False)
        self.eval()  # inference: megatron's attention uses its KV cache only out of training

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.body(hidden)
