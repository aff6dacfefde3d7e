"""One JSON file per run, loaded into frozen dataclasses; every problem is reported at once."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from layerwise.errors import ConfigError
from layerwise.schema import build
from layerwise.specs import (
    MODEL_PRESETS,
    HardwareSpec,
    ModelSpec,
    find_hardware_profile,
    hardware_profile_names,
    load_hardware,
    with_gpus_per_node,
)

Mode = Literal["baseline", "layerwise"]
Auto = Literal["auto"]


@dataclass(frozen=True)
class HardwareConfig:
    profile: str
    """A profile name from configs/hardware (h100-sxm, h200, cpu-mock) or a path to a .yaml file."""
    gpus: int = field(metadata={"min": 1})
    """GPUs in the run; must equal the launcher's world size."""
    gpus_per_node: int | None = field(default=None, metadata={"min": 1})
    """Override of the profile's GPUs per NVLink domain (16: one domain, as the seed assumes)."""


@dataclass(frozen=True)
class Workload:
    batch_size: int = field(metadata={"min": 1})
    """Sequences per batch."""
    seq_len: int = field(metadata={"min": 1})
    """Prompt tokens per sequence (prefill)."""
    decode_steps: int = field(default=16, metadata={"min": 0})
    """Decode steps after the prefill, one token per sequence each."""

    @property
    def prefill_tokens(self) -> int:
        return self.batch_size * self.seq_len


@dataclass(frozen=True)
class BaselineOptions:
    tensor_parallel: int = field(default=8, metadata={"min": 1})
    pipeline_parallel: int = field(default=2, metadata={"min": 1})
    micro_batches: int | Auto = "auto"
    """Micro-batches per prefill batch (whole sequences each), or "auto": the planner's best."""


@dataclass(frozen=True)
class LayerwiseOptions:
    l2_budget_fraction: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    """Share of L2 that activation tiles and resident weights may use."""
    micro_batches: int | Auto = "auto"
    """Chunks per replica's prefill batch, or "auto": the planner chooses the chunk size."""
    replicas: int | Auto = "auto"
    """Data-parallel copies of the pipeline; stages = gpus / replicas. "auto": best predicted."""


@dataclass(frozen=True)
class RunOptions:
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    seed: int = 1234
    warmup_iters: int = field(default=2, metadata={"min": 0})
    timed_iters: int = field(default=5, metadata={"min": 1})
    timeout_s: float = field(default=600.0, metadata={"min": 1.0})
    """Seconds any collective may wait before the run fails (a dead rank cannot hang the rest)."""


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
    source: str = "config"


SECTIONS = {
    "workload": Workload,
    "baseline": BaselineOptions,
    "layerwise": LayerwiseOptions,
    "run": RunOptions,
    "hardware": HardwareConfig,
}
TOP_KEYS = ("mode", "model", "hardware", "workload", "baseline", "layerwise", "run", "deepspeed")


def _model(value: Any, problems: list[str]) -> ModelSpec | None:
    """A preset name, or an object of ModelSpec fields with an optional "preset" to start from."""
    presets = ", ".join(sorted(MODEL_PRESETS))
    if isinstance(value, str):
        if value in MODEL_PRESETS:
            return MODEL_PRESETS[value]
        problems.append(f"model: unknown preset {value!r} (presets: {presets})")
        return None
    if not isinstance(value, dict):
        problems.append(f"model: expected a preset name or an object, got {value!r}")
        return None
    fields = dict(value)
    preset = fields.pop("preset", None)
    base: dict[str, Any] = {}
    if preset is not None:
        if not isinstance(preset, str) or preset not in MODEL_PRESETS:
            problems.append(f"model.preset: unknown preset {preset!r} (presets: {presets})")
            return None
        base = dataclasses.asdict(MODEL_PRESETS[preset])
        base["name"] = fields.get("name", f"{preset}-custom" if fields else preset)
    return build(ModelSpec, base | fields, "model", problems)


def _hardware_spec(
    hardware: HardwareConfig, folder: Path, problems: list[str]
) -> HardwareSpec | None:
    path = find_hardware_profile(hardware.profile, folder)
    if path is None:
        known = ", ".join(hardware_profile_names())
        problems.append(f"hardware.profile: no profile {hardware.profile!r} (known: {known})")
        return None
    try:
        return with_gpus_per_node(load_hardware(path), hardware.gpus_per_node)
    except ConfigError as error:
        problems.extend(f"{error.source}: {p}" for p in error.problems)
        return None


def parse_config(data: Any, source: str = "config", folder: Path = Path(".")) -> RunConfig:
    """Validate parsed JSON; raises ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([f"expected a JSON object at the top, got {type(data).__name__}"], source)
    problems: list[str] = []
    for unknown in sorted(set(data) - set(TOP_KEYS)):
        problems.append(f"{unknown}: unknown key (known: {', '.join(TOP_KEYS)})")
    for required in ("mode", "model", "hardware", "workload"):
        if required not in data:
            problems.append(f"{required}: missing")
    mode = data.get("mode")
    if "mode" in data and mode not in ("baseline", "layerwise"):
        problems.append(f"mode: expected 'baseline' or 'layerwise', got {mode!r}")
    model = _model(data["model"], problems) if "model" in data else None
    sections = {
        name: build(cls, data.get(name, {}), name, problems)
        for name, cls in SECTIONS.items()
        if name in data or name not in ("hardware", "workload")
    }
    deepspeed = data.get("deepspeed", {})
    if not isinstance(deepspeed, dict):
        problems.append(f"deepspeed: expected an object, got {deepspeed!r}")
    gpu = None
    if sections.get("hardware") is not None:
        gpu = _hardware_spec(sections["hardware"], folder, problems)
    parts = [
        model,
        *(sections.get(name) for name in ("hardware", "workload", "baseline", "layerwise")),
    ]
    if all(part is not None for part in parts):
        problems += layout_problems(*parts)
    if problems:
        raise ConfigError(problems, source)
    return RunConfig(mode, model, gpu=gpu, deepspeed=deepspeed, source=source, **sections)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate one JSON config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError([f"cannot read: {error.strerror}"], str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            [f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"], str(path)
        ) from None
    return parse_config(data, str(path), path.parent)


def layout_problems(
    model: ModelSpec,
    hardware: HardwareConfig,
    workload: Workload,
    baseline: BaselineOptions,
    layerwise: LayerwiseOptions,
) -> list[str]:
    """Cross-field checks of both layouts' options against the model, GPUs and batch."""
    problems = []
    gpus = hardware.gpus
    if model.kind == "gpt":
        for name in ("heads", "head_dim", "ffn_hidden"):
            if getattr(model, name) < 1:
                problems.append(f"model.{name}: a gpt model needs >= 1, got {getattr(model, name)}")
    tp, pp = baseline.tensor_parallel, baseline.pipeline_parallel
    if tp * pp != gpus:
        problems.append(
            f"baseline.tensor_parallel x baseline.pipeline_parallel = {tp} x {pp} = {tp * pp}, "
            f"but hardware.gpus = {gpus}"
        )
    if pp > model.num_layers:
        problems.append(
            f"baseline.pipeline_parallel = {pp} stages is more than model.num_layers = "
            f"{model.num_layers}"
        )
    elif model.num_layers % pp:
        problems.append(
            f"baseline.pipeline_parallel = {pp} does not divide model.num_layers = "
            f"{model.num_layers} (Megatron's default layout splits layers evenly)"
        )
    elif model.kind == "dense" and tp > 1 and (model.num_layers // pp) % 2:
        problems.append(
            f"baseline: dense layers pair up under tensor parallelism (column- then row-parallel, "
            f"as Megatron's MLP), so model.num_layers / baseline.pipeline_parallel = "
            f"{model.num_layers} / {pp} must be even"
        )
    widths = {"model.hidden": model.hidden}
    if model.kind == "gpt":
        widths = {"model.heads": model.heads, "model.ffn_hidden": model.ffn_hidden}
    for name, width in widths.items():
        if tp > 1 and width % tp:
            problems.append(f"baseline.tensor_parallel = {tp} does not divide {name} = {width}")
    problems += micro_batch_problems(
        "baseline", baseline.micro_batches, workload.batch_size, model, workload
    )
    replicas = layerwise.replicas
    if replicas == "auto":
        replicas = auto_replicas(model, gpus, workload.batch_size)
        if replicas is None:
            problems.append(
                f"layerwise.replicas: no count divides hardware.gpus = {gpus} and "
                f"workload.batch_size = {workload.batch_size} with at most model.num_layers = "
                f"{model.num_layers} stages per replica"
            )
            return problems
    if replicas:
        if gpus % replicas or workload.batch_size % replicas:
            problems.append(
                f"layerwise.replicas = {replicas} must divide hardware.gpus = {gpus} and "
                f"workload.batch_size = {workload.batch_size}"
            )
        elif gpus // replicas > model.num_layers:
            problems.append(
                f"layerwise: hardware.gpus / layerwise.replicas = {gpus} / {replicas} = "
                f"{gpus // replicas} stages is more than model.num_layers = {model.num_layers}; "
                f'use more replicas or "auto"'
            )
        else:
            problems += micro_batch_problems(
                "layerwise",
                layerwise.micro_batches,
                workload.batch_size // replicas,
                model,
                workload,
            )
    return problems


def replica_counts(model: ModelSpec, gpus: int, batch_size: int) -> list[int]:
    """Replica counts that divide the GPUs and the batch and leave no more stages than layers."""
    return [
        r
        for r in range(1, gpus + 1)
        if gpus % r == 0 and batch_size % r == 0 and gpus // r <= model.num_layers
    ]


def auto_replicas(model: ModelSpec, gpus: int, batch_size: int) -> int | None:
    """ "auto": the deepest pipeline (fewest replicas) possible; one replica when layers >= GPUs."""
    return min(replica_counts(model, gpus, batch_size), default=None)


def micro_batch_problems(
    section: str, micro_batches: int | str, sequences: int, model: ModelSpec, workload: Workload
) -> list[str]:
    """A chunk holds whole sequences (gpt, and every baseline chunk) or any tokens (dense)."""
    if micro_batches == "auto":
        return []
    units = (
        sequences * workload.seq_len
        if (section == "layerwise" and model.tokens_independent)
        else sequences
    )
    if micro_batches < 1 or units % micro_batches:
        unit = "tokens" if units != sequences else "sequences"
        return [
            f"{section}.micro_batches = {micro_batches} must divide the {units} {unit} "
            f"per pipeline (equal micro-batches)"
        ]
    return []
