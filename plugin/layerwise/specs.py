"""Model and hardware specifications: pure data, presets and YAML hardware profiles."""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from layerwise.errors import ConfigError
from layerwise.schema import build

ModelKind = Literal["dense", "gpt"]
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class ModelSpec:
    """A stack of identical layers.

    dense: each layer is one hidden x hidden weight, y = x @ W (the seed's memory arithmetic).
    gpt: a pre-norm transformer layer: QKV and output projections around causal attention of
    `heads` x `head_dim`, then an MLP hidden -> ffn_hidden -> hidden; biases and two LayerNorms.
    """

    name: str = "custom"
    kind: ModelKind = "dense"
    num_layers: int = field(default=16, metadata={"min": 1})
    hidden: int = field(default=16384, metadata={"min": 1})
    heads: int = field(default=0, metadata={"min": 0})
    head_dim: int = field(default=0, metadata={"min": 0})
    ffn_hidden: int = field(default=0, metadata={"min": 0})

    @property
    def attention_width(self) -> int:
        """heads x head_dim: the width of Q, K, V and of the output projection's input."""
        return self.heads * self.head_dim

    @property
    def layer_params(self) -> int:
        """Parameters of one layer."""
        if self.kind == "dense":
            return self.hidden * self.hidden
        qkv = self.hidden * 3 * self.attention_width + 3 * self.attention_width
        proj = self.attention_width * self.hidden + self.hidden
        mlp = 2 * self.hidden * self.ffn_hidden + self.ffn_hidden + self.hidden
        return qkv + proj + mlp + 4 * self.hidden

    @property
    def tokens_independent(self) -> bool:
        """True when tokens may be chunked freely; attention needs whole sequences in a chunk."""
        return self.kind == "dense"


MODEL_PRESETS = {
    "seed-dense": ModelSpec("seed-dense", "dense", 16, 16384),
    "seed-gpt": ModelSpec("seed-gpt", "gpt", 16, 16384, heads=32, head_dim=128, ffn_hidden=16384),
    "mock-dense": ModelSpec("mock-dense", "dense", 8, 64),
    "mock-gpt": ModelSpec("mock-gpt", "gpt", 8, 64, heads=4, head_dim=16, ffn_hidden=128),
}


@dataclass(frozen=True)
class LinkSpec:
    """One interconnect level.

    p2p = latency + bytes / p2p bandwidth. All-reduce over n GPUs = latency + 2(n-1)/n * bytes /
    busbw, or 2(n-1)/n * bytes / busbw(bytes) with a measured bus-bandwidth table (nccl-tests
    convention), which then replaces the latency + bandwidth pair.
    """

    p2p_latency_us: float = field(metadata={"min": 0})
    p2p_gbs: float = field(metadata={"min": 1e-6})
    allreduce_latency_us: float = field(metadata={"min": 0})
    allreduce_busbw_gbs: float = field(metadata={"min": 1e-6})
    allreduce_busbw_measured_gbs: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareSpec:
    """One GPU kind and its node topology; every figure's unit is in its name, its source in the
    YAML profile it was loaded from."""

    name: str
    description: str
    peak_tflops: float = field(metadata={"min": 1e-9})
    gemm_tflops: dict[int, dict[int, float]]
    gemm_floor_us: float = field(metadata={"min": 0})
    kernel_floor_us: float = field(metadata={"min": 0})
    attention_tflops: float = field(metadata={"min": 1e-9})
    hbm_gbs: float = field(metadata={"min": 1e-6})
    hbm_datasheet_gbs: float = field(metadata={"min": 1e-6})
    hbm_capacity_gib: float = field(metadata={"min": 1e-6})
    reserved_gib: float = field(metadata={"min": 0})
    l2_mib: float = field(metadata={"min": 0})
    l2_gbs: float = field(metadata={"min": 1e-6})
    gpus_per_node: int = field(metadata={"min": 1})
    intra_node: LinkSpec
    inter_node: LinkSpec

    @property
    def usable_bytes(self) -> float:
        """HBM left for weights, KV cache and activations after the runtime's reserve."""
        return (self.hbm_capacity_gib - self.reserved_gib) * 2**30

    @property
    def l2_bytes(self) -> float:
        return self.l2_mib * 2**20


def hardware_dirs() -> list[Path]:
    """Where profile names are looked up: $LAYERWISE_HARDWARE_DIR, then configs/hardware."""
    dirs = [Path(p) for p in os.environ.get("LAYERWISE_HARDWARE_DIR", "").split(os.pathsep) if p]
    return dirs + [Path(__file__).resolve().parents[2] / "configs" / "hardware"]


def hardware_profile_names() -> list[str]:
    return sorted({p.stem for d in hardware_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find_hardware_profile(name: str, relative_to: Path | None = None) -> Path | None:
    """A profile given by name (`h100-sxm`) or by path to a .yaml file."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_absolute() and relative_to is not None and not path.exists():
            path = relative_to / path
        return path if path.is_file() else None
    for directory in hardware_dirs():
        path = directory / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def load_hardware(path: Path) -> HardwareSpec:
    """Parse and validate one YAML profile; every problem is reported at once (ConfigError)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError([f"cannot read hardware profile: {error}"], str(path)) from None
    problems: list[str] = []
    spec = build(HardwareSpec, data, "hardware", problems)
    if spec is not None:
        tables = {f"gemm_tflops[{width}]": rates for width, rates in spec.gemm_tflops.items()}
        tables["gemm_tflops"] = {width: 1.0 for width in spec.gemm_tflops}
        for level in ("intra_node", "inter_node"):
            measured = getattr(spec, level).allreduce_busbw_measured_gbs
            tables[f"{level}.allreduce_busbw_measured_gbs"] = measured or {1: 1.0}
        for name, table in tables.items():
            if not table or min(table) <= 0 or min(table.values()) <= 0:
                problems.append(f"hardware.{name}: needs positive keys and values, got {table}")
    if problems:
        raise ConfigError(problems, str(path))
    return spec


def with_gpus_per_node(hardware: HardwareSpec, gpus_per_node: int | None) -> HardwareSpec:
    return (
        hardware
        if gpus_per_node is None
        else dataclasses.replace(hardware, gpus_per_node=gpus_per_node)
    )
