"""What is placed: a model as pipeline layers (embedding, blocks, LM head), presets, dtypes."""

from dataclasses import dataclass, field
from typing import Literal

ModelKind = Literal["dense", "gpt"]


DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


LayerRole = Literal["embedding", "block", "head"]


@dataclass(frozen=True)
class ModelSpec:
    """A stack of identical blocks, optionally between a token embedding and an LM head.

    dense: each block is one hidden x hidden weight, y = x @ W (the seed's memory arithmetic).
    gpt: a pre-norm transformer block: QKV and output projections around causal attention of
    `heads` query heads of `head_dim` sharing `query_groups` K/V heads (0: one per head, MHA;
    fewer: GQA; 1: MQA), rotary position embeddings if `rope` (base `rope_base`; Llama 3.1's
    frequency scaling by `rope_llama3_factor` when > 0); then an MLP hidden -> ffn_hidden ->
    hidden, gated (SwiGLU: fc1 makes gate and up, silu(gate) * up) if `gated_mlp`, else GELU;
    LayerNorm or RMSNorm before each; biases on every linear if `bias`, on QKV only if
    `qkv_bias`. With `vocab_size` > 0, pipeline layer 0 is the token embedding and the last one
    the LM head (final norm + vocabulary projection, sharing the embedding's weight if
    `tied_embeddings`); without, hidden states go in and out.
    """

    name: str = "custom"
    kind: ModelKind = "dense"
    num_layers: int = field(default=16, metadata={"min": 1, "max": 100_000})
    hidden: int = field(default=16384, metadata={"min": 1, "max": 2**20})
    heads: int = field(default=0, metadata={"min": 0, "max": 2**16})
    head_dim: int = field(default=0, metadata={"min": 0, "max": 2**16})
    ffn_hidden: int = field(default=0, metadata={"min": 0, "max": 2**22})
    query_groups: int = field(default=0, metadata={"min": 0, "max": 2**16})
    gated_mlp: bool = False
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = field(default=1e-5, metadata={"min": 0})
    bias: bool = True
    qkv_bias: bool = False
    rope: bool = False
    rope_base: float = field(default=10000.0, metadata={"min": 1e-9})
    rope_llama3_factor: float = field(default=0.0, metadata={"min": 0})
    vocab_size: int = field(default=0, metadata={"min": 0, "max": 2**24})
    tied_embeddings: bool = False

    @property
    def kv_heads(self) -> int:
        """K/V heads: query_groups, or one per query head when 0."""
        return self.query_groups or self.heads

    @property
    def attention_width(self) -> int:
        """heads x head_dim: the width of Q and of the output projection's input."""
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        """kv_heads x head_dim: the width of K and of V."""
        return self.kv_heads * self.head_dim

    @property
    def pipeline_layers(self) -> int:
        """Layers a pipeline places: the blocks, plus the embedding and the LM head."""
        return self.num_layers + (2 if self.vocab_size else 0)

    def role(self, index: int) -> tuple[LayerRole, int]:
        """Pipeline layer `index` -> (role, block number; -1 for the embedding and head)."""
        if not self.vocab_size:
            return "block", index
        if index == 0:
            return "embedding", -1
        if index == self.num_layers + 1:
            return "head", -1
        return "block", index - 1

    def host_key(self, index: int) -> str:
        """Which layer_host_us figure prices pipeline layer `index`: "embedding", "head", or
        the block's make ("dense", "gpt", or "llama": a gpt block with rotary embeddings or a
        gated MLP, whose extra kernels cost the host more)."""
        role, _ = self.role(index)
        if role != "block":
            return role
        if self.kind == "dense":
            return "dense"
        return "llama" if self.rope or self.gated_mlp else "gpt"

    @property
    def block_params(self) -> int:
        """Parameters of one block."""
        if self.kind == "dense":
            return self.hidden * self.hidden
        h, a, kv, f = self.hidden, self.attention_width, self.kv_width, self.ffn_hidden
        qkv = h * (a + 2 * kv) + (a + 2 * kv) * (self.bias or self.qkv_bias)
        proj = a * h + h * self.bias
        up = 2 * f if self.gated_mlp else f
        mlp = h * up + f * h + (up + h) * self.bias
        norms = 2 * h * (2 if self.norm == "layernorm" else 1)
        return qkv + proj + mlp + norms

    def layer_params(self, index: int) -> int:
        """Parameters of pipeline layer `index` (a tied LM head holds its own copy)."""
        role, _ = self.role(index)
        if role == "embedding":
            return self.vocab_size * self.hidden
        if role == "head":
            return self.vocab_size * self.hidden + self.hidden * (
                2 if self.norm == "layernorm" else 1
            )
        return self.block_params

    @property
    def tokens_independent(self) -> bool:
        """True when tokens may be chunked freely; attention needs whole sequences in a chunk."""
        return self.kind == "dense"


LLAMA = {"gated_mlp": True, "norm": "rmsnorm", "norm_eps": 1e-5, "bias": False, "rope": True}


def llama(name: str, layers: int, hidden: int, heads: int, ffn: int, **fields) -> ModelSpec:
    """A Llama-family shape: head_dim 128, 8 K/V heads unless given, SwiGLU, RMSNorm, RoPE."""
    shape = {"head_dim": 128, "query_groups": 8, **LLAMA, **fields}
    return ModelSpec(name, "gpt", layers, hidden, heads=heads, ffn_hidden=ffn, **shape)


LLAMA_3_1 = {"vocab_size": 128256, "rope_base": 500000.0, "rope_llama3_factor": 8.0}


MODEL_PRESETS = {
    "seed-dense": ModelSpec("seed-dense", "dense", 16, 16384),
    "seed-gpt": ModelSpec("seed-gpt", "gpt", 16, 16384, heads=32, head_dim=128, ffn_hidden=16384),
    "mock-dense": ModelSpec("mock-dense", "dense", 8, 64),
    "mock-gpt": ModelSpec("mock-gpt", "gpt", 8, 64, heads=4, head_dim=16, ffn_hidden=128),
    "mock-llama": llama(
        "mock-llama", 6, 64, 8, 96, head_dim=8, query_groups=2, vocab_size=96, tied_embeddings=True
    ),
    # Shapes of the published configs (huggingface.co/<org>/<model>/config.json, docs/sources.md)
    "llama-3.1-8b": llama("llama-3.1-8b", 32, 4096, 32, 14336, **LLAMA_3_1),
    "llama-3.1-70b": llama("llama-3.1-70b", 80, 8192, 64, 28672, **LLAMA_3_1),
    "llama-3.1-405b": llama("llama-3.1-405b", 126, 16384, 128, 53248, **LLAMA_3_1),
    "mistral-7b": llama("mistral-7b", 32, 4096, 32, 14336, vocab_size=32768, rope_base=1000000.0),
}
