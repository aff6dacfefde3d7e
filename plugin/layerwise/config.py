"""One JSON file per run, loaded into frozen dataclasses; every problem is reported at once."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from layerwise.errors import ConfigError
from layerwise.hf_config import load_model_fields
from layerwise.replicas import (
    decode_micro_batch_problems,
    micro_batch_problems,
    replica_problems,
)
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
from layerwise.splits import has_split

Mode = Literal["baseline", "layerwise"]
Objective = Literal["throughput", "latency"]
"""What the planner optimises: prefill tokens/s (throughput) or seconds per decode step
(latency, TPOT)."""
OBJECTIVES = ("throughput", "latency")
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
    micro_batches: int | Auto = field(default="auto", metadata={"min": 1})
    """Micro-batches per prefill batch (whole sequences each), or "auto": the planner's best."""
    decode_micro_batches: int | Auto = field(default="auto", metadata={"min": 1})
    """Micro-batches per decode step (sequences each), or "auto": the planner's best."""


@dataclass(frozen=True)
class LayerwiseOptions:
    l2_budget_fraction: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    """Share of L2 that activation tiles and resident weights may use."""
    micro_batches: int | Auto = field(default="auto", metadata={"min": 1})
    """Chunks per replica's prefill batch, or "auto": the planner chooses the chunk size."""
    decode_micro_batches: int | Auto = field(default="auto", metadata={"min": 1})
    """Micro-batches per decode step of a replica's sequences, or "auto": the planner's best.
    As many as the pipeline has stages (or more) stream decode steps through it."""
    replicas: int | Auto = field(default="auto", metadata={"min": 1})
    """Data-parallel copies of the pipeline; stages = gpus / replicas. "auto": the best
    predicted for the run's objective (the deepest pipeline breaks ties)."""


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
    objective: Objective = "throughput"
    """What layerwise.replicas "auto" and the recommendation optimise (OBJECTIVES)."""
    source: str = "config"


SECTIONS = {
    "workload": Workload,
    "baseline": BaselineOptions,
    "layerwise": LayerwiseOptions,
    "run": RunOptions,
    "hardware": HardwareConfig,
}
TOP_KEYS = (
    "mode",
    "objective",
    "model",
    "hardware",
    "workload",
    "baseline",
    "layerwise",
    "run",
    "deepspeed",
)


def _model(value: Any, problems: list[str], folder: Path = Path(".")) -> ModelSpec | None:
    """A preset name, or an object of ModelSpec fields starting from a "preset" or "hf_config".

    hf_config names a Hugging Face config.json (relative to the run config's folder); the
    object's other keys override what the file gives, e.g. "num_layers" to plan a slice of it.
    """
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
    hf_config = fields.pop("hf_config", None)
    base: dict[str, Any] = {}
    if preset is not None and "hf_config" in value:
        problems.append('model: give "preset" or "hf_config", not both')
        return None
    if preset is not None:
        if not isinstance(preset, str) or preset not in MODEL_PRESETS:
            problems.append(f"model.preset: unknown preset {preset!r} (presets: {presets})")
            return None
        base = dataclasses.asdict(MODEL_PRESETS[preset])
        base["name"] = fields.get("name", f"{preset}-custom" if fields else preset)
    elif "hf_config" in value:
        base = load_model_fields(hf_config, folder, problems)
        if base is None:
            build(ModelSpec, fields, "model", problems)  # the overrides' problems too, at once
            return None
        name = base["name"]
        base["name"] = fields.get("name", f"{name}-custom" if fields else name)
    return build(ModelSpec, base | fields, "model", problems)


def _hardware_spec(
    profile: str, gpus_per_node: int | None, folder: Path, problems: list[str]
) -> HardwareSpec | None:
    path = find_hardware_profile(profile, folder)
    if path is None:
        known = ", ".join(hardware_profile_names())
        problems.append(f"hardware.profile: no profile {profile!r} (known: {known})")
        return None
    try:
        return with_gpus_per_node(load_hardware(path), gpus_per_node)
    except ConfigError as error:
        problems.extend(f"{error.source}: {p}" for p in error.problems)
        return None


def _profile_of(data: Any, hardware: HardwareConfig | None) -> tuple[str | None, int | None]:
    """(profile, gpus_per_node) to load: from the built section, or, when other hardware keys
    are wrong, the profile name alone, so an unknown profile is reported with them."""
    if hardware is not None:
        return hardware.profile, hardware.gpus_per_node
    section = data.get("hardware")
    profile = section.get("profile") if isinstance(section, dict) else None
    return (profile, None) if isinstance(profile, str) else (None, None)


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
    objective = data.get("objective", "throughput")
    if objective not in OBJECTIVES:
        problems.append(f"objective: expected 'throughput' or 'latency', got {objective!r}")
    model = _model(data["model"], problems, folder) if "model" in data else None
    sections = {
        name: build(cls, data.get(name, {}), name, problems)
        for name, cls in SECTIONS.items()
        if name in data or name not in ("hardware", "workload")
    }
    deepspeed = data.get("deepspeed", {})
    if not isinstance(deepspeed, dict):
        problems.append(f"deepspeed: expected an object, got {deepspeed!r}")
    gpu = None
    profile, gpus_per_node = _profile_of(data, sections.get("hardware"))
    if profile is not None:
        gpu = _hardware_spec(profile, gpus_per_node, folder, problems)
    problems += layout_problems(
        model, *(sections.get(name) for name in ("hardware", "workload", "baseline", "layerwise"))
    )
    if problems:
        raise ConfigError(problems, source)
    return RunConfig(
        mode,
        model,
        gpu=gpu,
        deepspeed=deepspeed,
        objective=objective,
        source=source,
        **sections,
    )


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
    model: ModelSpec | None,
    hardware: HardwareConfig | None,
    workload: Workload | None,
    baseline: BaselineOptions | None,
    layerwise: LayerwiseOptions | None,
) -> list[str]:
    """Cross-field checks of both layouts' options against the model, GPUs and batch. A part
    that had problems of its own is None: the checks that need it are left out, the rest run."""
    problems = model_problems(model) if model is not None else []
    if baseline is not None:
        problems += baseline_problems(model, hardware, workload, baseline)
    if None not in (model, hardware, workload, layerwise):
        problems += replica_problems(model, hardware.gpus, workload, layerwise)
    return problems


def baseline_problems(
    model: ModelSpec | None,
    hardware: HardwareConfig | None,
    workload: Workload | None,
    baseline: BaselineOptions,
) -> list[str]:
    """TP x PP must fill the GPUs, split the model as Megatron can, and the micro-batch counts
    must split the batch; each check runs when the parts it needs are valid."""
    problems = []
    tp, pp = baseline.tensor_parallel, baseline.pipeline_parallel
    if hardware is not None and tp * pp != hardware.gpus:
        problems.append(
            f"baseline.tensor_parallel x baseline.pipeline_parallel = {tp} x {pp} = {tp * pp}, "
            f"but hardware.gpus = {hardware.gpus}"
        )
    if model is None:
        return problems
    problems += pipeline_split_problems(model, tp, pp)
    problems += tensor_parallel_problems(model, tp)
    if workload is not None:
        problems += micro_batch_problems(
            "baseline", baseline.micro_batches, workload.batch_size, model, workload
        )
        problems += decode_micro_batch_problems(
            "baseline", baseline.decode_micro_batches, workload.batch_size
        )
    return problems


GPT_ONLY = (
    "query_groups",
    "gated_mlp",
    "norm",
    "qkv_bias",
    "rope",
    "rope_base",
    "rope_llama3_factor",
    "vocab_size",
    "tied_embeddings",
)
"""ModelSpec fields a dense model (one hidden x hidden weight per layer) must leave at default."""


def model_problems(model: ModelSpec) -> list[str]:
    """Model fields that contradict each other: gpt-only fields on a dense model, a gpt model
    without heads or MLP, query groups that do not divide the heads, a tied head without one."""
    if model.kind == "dense":
        defaults = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
        return [
            f"model.{name}: a dense model has no {name} (a layer is one hidden x hidden "
            f"weight), got {getattr(model, name)!r}; leave it out or use kind 'gpt'"
            for name in GPT_ONLY
            if getattr(model, name) != defaults[name]
        ]
    problems = [
        f"model.{name}: a gpt model needs >= 1, got {getattr(model, name)}"
        for name in ("heads", "head_dim", "ffn_hidden")
        if getattr(model, name) < 1
    ]
    if model.heads >= 1 and model.heads % model.kv_heads:
        problems.append(
            f"model.query_groups = {model.query_groups} must divide model.heads = "
            f"{model.heads} (each K/V head serves the same number of query heads)"
        )
    if model.tied_embeddings and not model.vocab_size:
        problems.append("model.tied_embeddings = True needs model.vocab_size > 0, got 0")
    return problems


def pipeline_split_problems(model: ModelSpec, tp: int, pp: int) -> list[str]:
    """Megatron puts >= 1 block on every stage, evenly or by its uneven first/last keys; dense
    layers under TP pair up (column- then row-parallel), so every stage needs whole pairs."""
    if pp > model.num_layers:
        return [
            f"baseline.pipeline_parallel = {pp} stages is more than model.num_layers = "
            f"{model.num_layers}"
        ]
    if has_split(model.num_layers, pp, model.kind == "dense" and tp > 1):
        return []
    return [
        f"baseline.pipeline_parallel = {pp} cannot split model.num_layers = {model.num_layers}: "
        f"dense layers pair up under tensor parallelism (baseline.tensor_parallel = {tp}; "
        f"column- then row-parallel, as Megatron's MLP), so every stage needs an even number "
        f"of layers, and neither an even split nor megatron-core's "
        f"num_layers_in_first_pipeline_stage / num_layers_in_last_pipeline_stage (equal middle "
        f"stages) gives one"
    ]


def tensor_parallel_problems(model: ModelSpec, tp: int) -> list[str]:
    """Megatron splits heads, K/V query groups, the MLP and the vocabulary across TP ranks."""
    if tp == 1:
        return []
    widths = {"model.hidden": model.hidden}
    if model.kind == "gpt":
        widths = {"model.heads": model.heads, "model.ffn_hidden": model.ffn_hidden}
        if model.query_groups:
            widths["model.query_groups"] = model.query_groups
        if model.vocab_size:
            widths["model.vocab_size"] = model.vocab_size
    return [
        f"baseline.tensor_parallel = {tp} does not divide {name} = {width}"
        for name, width in widths.items()
        if width % tp
    ]
