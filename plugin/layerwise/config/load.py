"""One JSON file per run, loaded into frozen dataclasses; every problem is reported at once."""

import dataclasses
import json
from pathlib import Path
from typing import Any

from layerwise.config.checks import layout_problems
from layerwise.config.files import InputFileError, parse_json, read_input
from layerwise.config.schema import build, shown
from layerwise.config.sections import (
    OBJECTIVES,
    BaselineOptions,
    HardwareConfig,
    LayerwiseOptions,
    RunConfig,
    RunOptions,
    Workload,
)
from layerwise.errors import ConfigError
from layerwise.hardware.spec import (
    HardwareSpec,
    find_hardware_profile,
    hardware_profile_names,
    load_hardware,
    with_gpus_per_node,
)
from layerwise.model.hf_config import load_model_fields
from layerwise.model.spec import MODEL_PRESETS, ModelSpec

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
        problems.append(f"hardware.profile: no profile {shown(profile)} (known: {known})")
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
    workload = sections.get("workload")
    largest = workload is not None and workload.batch_size == "max"
    if largest:
        problems += max_batch_problems(mode, sections.get("baseline"), sections.get("layerwise"))
        sections["workload"] = None  # the batch checks run once it is resolved
    problems += layout_problems(
        model, *(sections.get(name) for name in ("hardware", "workload", "baseline", "layerwise"))
    )
    if problems:
        raise ConfigError(problems, source)
    if largest:
        sections["workload"] = workload
    config = RunConfig(
        mode, model, gpu=gpu, deepspeed=deepspeed, objective=objective, source=source, **sections
    )
    return resolved_max_batch(config) if largest else config


def max_batch_problems(
    mode: str, baseline: BaselineOptions | None, layerwise: LayerwiseOptions | None
) -> list[str]:
    """workload.batch_size "max" lets the planner pick the micro-batch counts of the config's
    own layout: a fixed count need not divide the batch found."""
    options = baseline if mode == "baseline" else layerwise
    if options is None:
        return []
    return [
        f'{mode}.{key} = {getattr(options, key)}: workload.batch_size "max" needs "auto" here '
        "(a fixed count need not divide the batch found)"
        for key in ("micro_batches", "decode_micro_batches")
        if getattr(options, key) != "auto"
    ]


def resolved_max_batch(config: RunConfig) -> RunConfig:
    """workload.batch_size "max" resolved (planner/capacity.py), then checked as a batch given."""
    from layerwise.planner.capacity import resolve_max_batch  # the planner imports config

    config = resolve_max_batch(config)
    problems = layout_problems(
        config.model, config.hardware, config.workload, config.baseline, config.layerwise
    )
    if problems:
        raise ConfigError(problems, config.source)
    return config


def load_config(path: str | Path) -> RunConfig:
    """Read and validate one JSON config file."""
    path = Path(path)
    try:
        data = parse_json(read_input(path))
    except InputFileError as error:
        raise ConfigError([error.reason], str(path)[:300]) from None
    return parse_config(data, str(path), path.parent)


def absolute_paths(data: dict, folder: Path) -> dict:
    """A copy of a config's data whose file paths (a `.yaml` hardware profile, model.hf_config)
    are absolute, found as `parse_config` finds them from `folder`: so the copy runs from any
    folder (tune's and compare's copies are written to a scratch folder)."""
    out = json.loads(json.dumps(data))
    hardware, model = out.get("hardware"), out.get("model")
    profile = hardware.get("profile") if isinstance(hardware, dict) else None
    if isinstance(profile, str) and profile.endswith((".yaml", ".yml")):
        found = find_hardware_profile(profile, folder)
        if isinstance(found, Path):
            hardware["profile"] = str(found.resolve())
    hf_config = model.get("hf_config") if isinstance(model, dict) else None
    if isinstance(hf_config, str) and hf_config and not Path(hf_config).is_absolute():
        model["hf_config"] = str((folder / hf_config).resolve())
    return out
