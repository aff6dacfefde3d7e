"""A GPU (or CPU-rank) profile and its links, loaded from YAML; lookup by name or path."""

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from layerwise.config.files import InputFileError, read_input
from layerwise.config.schema import build, shown
from layerwise.errors import ConfigError


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
    """One GPU kind (or the CPU ranks of mock mode) and its node topology; every figure's unit is
    in its name, its source in the YAML profile it was loaded from (`provenance` for profiles
    that launch/calibrate.py wrote)."""

    name: str
    description: str
    peak_tflops: float = field(metadata={"min": 1e-9})
    gemm_tflops: dict[str, dict[int, float]]
    """Achieved rate of X[M, K] @ W[K, N] by shape "KxN", then by M: FLOPs / (time - fixed)."""
    gemm_floor_us: float = field(metadata={"min": 0})
    kernel_floor_us: float = field(metadata={"min": 0})
    attention_tflops: float = field(metadata={"min": 1e-9})
    hbm_gbs: float = field(metadata={"min": 1e-6})
    hbm_datasheet_gbs: float = field(metadata={"min": 1e-6})
    hbm_capacity_gib: float = field(metadata={"min": 1e-6})
    reserved_gib: float = field(metadata={"min": 0})
    l2_mib: float = field(metadata={"min": 0})
    l2_gbs: float = field(metadata={"min": 0})
    """Weight read rate when resident in L2, as measured; 0: not measured, L2 is not priced."""
    gpus_per_node: int = field(metadata={"min": 1})
    intra_node: LinkSpec
    inter_node: LinkSpec
    attention_tflops_by_seq: dict[int, float] = field(default_factory=dict)
    """Causal-attention rate by sequence length (interpolated); empty: attention_tflops."""
    kernel_fixed_us: float = field(default=0.0, metadata={"min": 0})
    """Cost every kernel pays before its work (host dispatch on CPU ranks)."""
    elementwise_gbs: float = field(default=0.0, metadata={"min": 0})
    """Read + write rate of elementwise kernels; 0: hbm_gbs."""
    layer_host_us: dict[str, float] = field(default_factory=dict)
    """Host time of one layer's forward call beyond its kernels, by ModelSpec.host_key
    (embedding, head, dense, gpt, llama; "_decode" appended: a decode step's): Python, module
    and framework dispatch."""
    schedule_us: dict[str, dict[str, float]] = field(default_factory=dict)
    """The pipeline engine's own cost by mode (baseline: megatron-core's schedule, layerwise:
    DeepSpeed's engine): {"run": per prefill run or decode run, "micro_batch": per
    micro-batch on each stage}."""
    host_overlaps_device: bool = True
    """GPUs run kernels while the host queues the next (layer = max(host, kernels)); CPU ranks
    do one after the other (layer = host + kernels)."""
    shared_cores: float = field(default=0.0, metadata={"min": 0})
    """Cores CPU ranks effectively share (all ranks' busy time / cores bounds a run): ranks /
    the measured slowdown of all computing at once; 0: each rank has its own device."""
    fp8_peak_tflops: float = field(default=0.0, metadata={"min": 0})
    """FP8 dense peak, TFLOP/s (datasheet until launch/calibrate.py measures it): FP8 weights'
    GEMMs run at the measured rate x fp8_peak_tflops / peak_tflops; 0: no FP8 figure, priced at
    the measured rate."""
    provenance: dict = field(default_factory=dict)
    """Who measured what: device, date, torch version, command (written by calibrate.py)."""

    @property
    def usable_bytes(self) -> float:
        """HBM left for weights, KV cache and activations after the runtime's reserve."""
        return (self.hbm_capacity_gib - self.reserved_gib) * 2**30

    @property
    def l2_bytes(self) -> float:
        return self.l2_mib * 2**20


def gemm_shape(key: str) -> tuple[int, int] | None:
    """Parse a gemm_tflops key "KxN" into (K, N); None when malformed."""
    parts = key.split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        return None
    return int(parts[0]), int(parts[1])


def hardware_dirs() -> list[Traversable]:
    """Where profile names are looked up: each folder of $LAYERWISE_HARDWARE_DIR (os.pathsep
    between them), then the profiles shipped in the package (layerwise/hardware/profiles)."""
    dirs = [Path(p) for p in os.environ.get("LAYERWISE_HARDWARE_DIR", "").split(os.pathsep) if p]
    return [*dirs, resources.files(__package__) / "profiles"]


def hardware_profile_names() -> list[str]:
    return sorted(
        {
            entry.name.removesuffix(".yaml")
            for directory in hardware_dirs()
            if directory.is_dir()
            for entry in directory.iterdir()
            if entry.name.endswith(".yaml")
        }
    )


def find_hardware_profile(name: str, relative_to: Path | None = None) -> Traversable | None:
    """A profile given by name (`h100-sxm`) or by path to a .yaml file; None when there is
    none (a name the file system refuses, too long or with a NUL byte, included)."""
    try:
        return _find_profile(name, relative_to)
    except (OSError, ValueError):
        return None


def _find_profile(name: str, relative_to: Path | None) -> Traversable | None:
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


def load_hardware(path: Traversable) -> HardwareSpec:
    """Parse and validate one YAML profile; every problem is reported at once (ConfigError)."""
    try:
        data = yaml.safe_load(read_input(path))
    except InputFileError as error:
        raise ConfigError([f"hardware profile: {error.reason}"], str(path)[:300]) from None
    except (yaml.YAMLError, RecursionError) as error:
        reason = str(error)[:300] if isinstance(error, yaml.YAMLError) else "nested too deep"
        raise ConfigError([f"cannot read hardware profile: {reason}"], str(path)[:300]) from None
    problems: list[str] = []
    spec = build(HardwareSpec, data, "hardware", problems)
    if spec is not None:
        tables = {f"gemm_tflops[{shape}]": rates for shape, rates in spec.gemm_tflops.items()}
        tables["gemm_tflops"] = {1: 1.0} if spec.gemm_tflops else {}
        problems += [
            f'hardware.gemm_tflops: shape keys are "KxN" (e.g. "4096x4096"), got {key!r}'
            for key in spec.gemm_tflops
            if gemm_shape(key) is None
        ]
        if spec.attention_tflops_by_seq:
            tables["attention_tflops_by_seq"] = spec.attention_tflops_by_seq
        for level in ("intra_node", "inter_node"):
            measured = getattr(spec, level).allreduce_busbw_measured_gbs
            tables[f"{level}.allreduce_busbw_measured_gbs"] = measured or {1: 1.0}
        for name, table in tables.items():
            if not table or min(table) <= 0 or min(table.values()) <= 0:
                problems.append(
                    f"hardware.{name}: needs positive keys and values, got {shown(table)}"
                )
        costs = {f"layer_host_us[{key!r}]": us for key, us in spec.layer_host_us.items()}
        costs |= {
            f"schedule_us[{mode!r}][{key!r}]": us
            for mode, table in spec.schedule_us.items()
            for key, us in table.items()
        }
        problems += [
            f"hardware.{name}: must be >= 0, got {us}" for name, us in costs.items() if us < 0
        ]
    if problems:
        raise ConfigError(problems, str(path))
    return spec


def with_gpus_per_node(hardware: HardwareSpec, gpus_per_node: int | None) -> HardwareSpec:
    return (
        hardware
        if gpus_per_node is None
        else dataclasses.replace(hardware, gpus_per_node=gpus_per_node)
    )
