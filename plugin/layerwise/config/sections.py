"""The config's sections as frozen dataclasses: one per JSON section, a docstring per field."""

from dataclasses import dataclass, field
from typing import Any, Literal

from layerwise.hardware.spec import HardwareSpec
from layerwise.model.spec import ModelSpec

Mode = Literal["baseline", "layerwise"]


Objective = Literal["throughput", "latency"]


"""What the planner optimises: prefill tokens/s (throughput) or seconds per decode step
(latency, TPOT)."""


OBJECTIVES = ("throughput", "latency")


Auto = Literal["auto"]


@dataclass(frozen=True)
class HardwareConfig:
    profile: str
    """A profile name (shipped: h100-sxm, h200, cpu-mock; or one in $LAYERWISE_HARDWARE_DIR) or
    a path to a .yaml file."""
    gpus: int = field(metadata={"min": 1, "max": 65536})
    """GPUs in the run; must equal the launcher's world size."""
    gpus_per_node: int | None = field(default=None, metadata={"min": 1, "max": 1024})
    """Override of the profile's GPUs per NVLink domain (16: one domain, as the seed assumes)."""


@dataclass(frozen=True)
class Workload:
    batch_size: int | Literal["max"] = field(metadata={"min": 1, "max": 2**20})
    """Sequences per batch; "max": the largest the config's own layout fits, KV cache included
    (resolved when the config is loaded: RunConfig.max_batch says so)."""
    seq_len: int = field(metadata={"min": 1, "max": 2**22})
    """Prompt tokens per sequence (prefill)."""
    decode_steps: int = field(default=16, metadata={"min": 0, "max": 2**20})
    """Decode steps after the prefill, one token per sequence each."""

    @property
    def prefill_tokens(self) -> int:
        return self.batch_size * self.seq_len


@dataclass(frozen=True)
class BaselineOptions:
    tensor_parallel: int = field(default=8, metadata={"min": 1, "max": 65536})
    pipeline_parallel: int = field(default=2, metadata={"min": 1, "max": 65536})
    micro_batches: int | Auto = field(default="auto", metadata={"min": 1, "max": 2**20})
    """Micro-batches per prefill batch (whole sequences each), or "auto": the planner's best."""
    decode_micro_batches: int | Auto = field(default="auto", metadata={"min": 1, "max": 2**20})
    """Micro-batches per decode step (sequences each), or "auto": the planner's best."""
    stage_layers: tuple[int, ...] | None = None
    """Transformer blocks per pipeline stage, in order (megatron's unit: the embedding and LM
    head are not counted), run as given; None: megatron's even split, else the best uneven one.
    megatron-core builds only even splits or first/last counts around equal middle stages."""


@dataclass(frozen=True)
class LayerwiseOptions:
    l2_budget_fraction: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    """Share of L2 that activation tiles and resident weights may use."""
    micro_batches: int | Auto = field(default="auto", metadata={"min": 1, "max": 2**20})
    """Chunks per replica's prefill batch, or "auto": the planner chooses the chunk size."""
    decode_micro_batches: int | Auto = field(default="auto", metadata={"min": 1, "max": 2**20})
    """Micro-batches per decode step of a replica's sequences, or "auto": the planner's best.
    As many as the pipeline has stages (or more) stream decode steps through it."""
    replicas: int | Auto = field(default="auto", metadata={"min": 1, "max": 65536})
    """Data-parallel copies of the pipeline; stages = gpus / replicas. "auto": the best
    predicted for the run's objective (the deepest pipeline breaks ties), or with stage_layers
    gpus / len(stage_layers)."""
    stage_layers: tuple[int, ...] | None = None
    """Pipeline layers per stage, in order (with a vocabulary the embedding and LM head count as
    layers), run as given at the replica count with that many stages; 0 leaves a stage empty.
    None: the exact partitioner places them."""


@dataclass(frozen=True)
class RunOptions:
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    seed: int = field(default=1234, metadata={"min": 0, "max": 2**31 - 1})
    warmup_iters: int = field(default=2, metadata={"min": 0, "max": 10**4})
    timed_iters: int = field(default=5, metadata={"min": 1, "max": 10**5})
    timeout_s: float = field(default=600.0, metadata={"min": 1.0, "max": 7 * 86400.0})
    """Seconds any collective may wait before the run fails (a dead rank cannot hang the rest)."""
    weights_dtype: Literal["bf16", "fp16", "fp32", "fp8"] | None = None
    """The weights' dtype where it differs from `dtype` ("fp8": e4m3, W8A8 GEMMs at the
    profile's FP8 rate); planned only: the runtime refuses FP8 (it has no FP8 path yet)."""
    kv_dtype: Literal["bf16", "fp16", "fp32", "fp8"] | None = None
    """The KV cache's dtype where it differs from `dtype`; planned only for "fp8"."""


@dataclass(frozen=True)
class RunConfig:
    mode: Mode
    model: ModelSpec
    hardware: HardwareConfig
    gpu: HardwareSpec
    """The hardware profile as loaded, with any gpus_per_node override applied."""
    workload: Workload
    baseline: BaselineOptions
    layerwise: LayerwiseOptions
    run: RunOptions
    deepspeed: dict[str, Any]
    """Passed through to deepspeed.initialize; keys the plan decides must agree with it."""
    objective: Objective = "throughput"
    """What layerwise.replicas "auto" and the recommendation optimise (OBJECTIVES)."""
    source: str = "config"
    max_batch: bool = False
    """workload.batch_size was "max", resolved to the largest batch the own layout fits."""
