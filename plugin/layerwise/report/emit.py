"""A planned layout as the settings of the engines users deploy on: Megatron-LM, vLLM, SGLang,
TensorRT-LLM and DeepSpeed (docs/usage.md, "Deploying the plan on your engine", cites each rule).

Every engine places the embedding on its first pipeline rank and the LM head on its last, and
takes transformer blocks per stage; the plan places pipeline layers (embedding, blocks, head).
`placement` turns a Layout into blocks per stage, and each `emit_*` writes one engine's settings
with what it cannot express said in `notes` (expressible False where the settings would not run
the plan: a stage before the embedding or after the head holds no layer an engine can put there).
"""

from dataclasses import dataclass

from layerwise.model.spec import ModelSpec
from layerwise.planner.records import Layout

ENGINES = ("megatron", "vllm", "sglang", "trtllm", "deepspeed")
PREDICTED_FOR = "figures beside these settings are PREDICTED for layerwise's own runtime"


@dataclass(frozen=True, kw_only=True)
class Placement:
    """A layout's pipeline in the terms engines take."""

    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    blocks: tuple[int, ...]
    """Transformer blocks on each stage, in order."""
    boundaries: tuple[int, ...]
    """Pipeline-layer boundaries (stages + 1), embedding and head counted as layers."""
    embedding_stage: int | None
    """The stage holding the embedding (None: the model has no vocabulary)."""
    head_stage: int | None


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    engine: str
    settings: dict
    """The engine's own names (flags, environment variables, arguments) and values."""
    command: str
    """How to pass them, one line."""
    expressible: bool
    notes: tuple[str, ...] = ()


def placement(model: ModelSpec, layout: Layout) -> Placement:
    """Blocks per stage and where the embedding and head sit, from a planned layout."""
    roles = [[model.role(i)[0] for i in range(s.first_layer, s.stop_layer)] for s in layout.stages]
    where = {role: s for s, held in enumerate(roles) for role in held if role != "block"}
    return Placement(
        tensor_parallel=layout.tensor_parallel,
        pipeline_parallel=len(layout.stages),
        replicas=layout.replicas,
        blocks=tuple(held.count("block") for held in roles),
        boundaries=(0, *(stage.stop_layer for stage in layout.stages)),
        embedding_stage=where.get("embedding"),
        head_stage=where.get("head"),
    )


def _common_notes(place: Placement, engine: str) -> tuple[bool, list[str]]:
    """(expressible, notes) every engine shares: the embedding and head stages, empty stages,
    replicas."""
    notes, expressible = [], True
    last = place.pipeline_parallel - 1
    if place.embedding_stage not in (None, 0) or place.head_stage not in (None, last):
        expressible = False
        notes.append(
            f"the plan holds the embedding on stage {place.embedding_stage} and the head on "
            f"stage {place.head_stage}; {engine} puts them on the first and last: it cannot run "
            "a stage before the embedding or after the head"
        )
    empty = [s for s, count in enumerate(place.blocks) if count == 0]
    if empty:
        notes.append(
            f"stage(s) {empty} hold no transformer block (the engine's checks accept a count "
            "of 0: the stage only forwards activations)"
        )
    if place.replicas > 1:
        notes.append(
            f"{place.replicas} replicas: run {place.replicas} instances with these settings "
            "behind a load balancer, or the engine's data parallelism where it has one"
        )
    return expressible, notes


def _partition(place: Placement) -> str:
    return ",".join(str(count) for count in place.blocks)


def megatron_layout_string(place: Placement) -> str:
    """Megatron's --pipeline-model-parallel-layout: stages split by '|', 'E' the embedding,
    't' a transformer block (t*n for n), 'L' the loss (output layer)."""
    stages = []
    for s, count in enumerate(place.blocks):
        text = "E" if s == 0 else ""
        text += "" if count == 0 else ("t" if count == 1 else f"t*{count}")
        text += "L" if s == place.pipeline_parallel - 1 else ""
        stages.append(text)
    return "|".join(stages)


def emit_megatron(place: Placement) -> EngineSettings:
    """Even blocks: TP and PP alone. Middle stages equal, first and last non-empty:
    --decoder-first/last-pipeline-num-layers. Else the layout string."""
    expressible, notes = _common_notes(place, "Megatron-LM")
    settings: dict = {
        "--tensor-model-parallel-size": place.tensor_parallel,
        "--pipeline-model-parallel-size": place.pipeline_parallel,
    }
    blocks, stages = place.blocks, place.pipeline_parallel
    middle = blocks[1:-1]
    if len(set(blocks)) > 1:
        if stages >= 2 and blocks[0] > 0 and blocks[-1] > 0 and len(set(middle)) <= 1:
            settings["--decoder-first-pipeline-num-layers"] = blocks[0]
            settings["--decoder-last-pipeline-num-layers"] = blocks[-1]
        else:
            settings["--pipeline-model-parallel-layout"] = megatron_layout_string(place)
    command = " ".join(f"{flag} {value}" for flag, value in settings.items())
    return EngineSettings(
        engine="megatron",
        settings=settings,
        command=command,
        expressible=expressible,
        notes=tuple(notes),
    )


def _env_engine(
    place: Placement, engine: str, name: str, env: str, flags: tuple[str, str]
) -> EngineSettings:
    expressible, notes = _common_notes(place, name)
    settings = {flags[0]: place.tensor_parallel, flags[1]: place.pipeline_parallel}
    settings[env] = _partition(place)
    command = (
        f"{env}={settings[env]} ... {flags[0]} {place.tensor_parallel} "
        f"{flags[1]} {place.pipeline_parallel}"
    )
    return EngineSettings(
        engine=engine,
        settings=settings,
        command=command,
        expressible=expressible,
        notes=tuple(notes),
    )


def emit_vllm(place: Placement) -> EngineSettings:
    """vLLM: blocks per stage in VLLM_PP_LAYER_PARTITION (vllm/distributed/utils.py
    get_pp_indices: one count per PP rank, summing to num_hidden_layers)."""
    flags = ("--tensor-parallel-size", "--pipeline-parallel-size")
    return _env_engine(place, "vllm", "vLLM", "VLLM_PP_LAYER_PARTITION", flags)


def emit_sglang(place: Placement) -> EngineSettings:
    """SGLang: SGLANG_PP_LAYER_PARTITION, the same rule
    (python/sglang/srt/distributed/utils.py get_pp_indices)."""
    return _env_engine(
        place, "sglang", "SGLang", "SGLANG_PP_LAYER_PARTITION", ("--tp-size", "--pp-size")
    )


def emit_trtllm(place: Placement) -> EngineSettings:
    """TensorRT-LLM's LLM API: tensor_parallel_size, pipeline_parallel_size and pp_partition
    (blocks per PP rank; NVIDIA/TensorRT-LLM PR #9003)."""
    expressible, notes = _common_notes(place, "TensorRT-LLM")
    settings = {
        "tensor_parallel_size": place.tensor_parallel,
        "pipeline_parallel_size": place.pipeline_parallel,
        "pp_partition": list(place.blocks),
    }
    command = "LLM(model, " + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"
    return EngineSettings(
        engine="trtllm",
        settings=settings,
        command=command,
        expressible=expressible,
        notes=tuple(notes),
    )


def emit_deepspeed(place: Placement) -> EngineSettings:
    """DeepSpeed: layerwise's drop-in LayerwisePipelineModule with the plan's boundaries over
    the pipeline layers (embedding and head included), which runs any split, empty stages too."""
    notes = []
    if place.tensor_parallel > 1:
        notes.append(
            f"TP {place.tensor_parallel}: DeepSpeed's pipeline has no tensor parallelism of "
            "its own; build the layers tensor-parallel (megatron-core) as the baseline runtime does"
        )
    if place.replicas > 1:
        notes.append(
            f"{place.replicas} replicas: a world of {place.replicas * place.pipeline_parallel} "
            "ranks, DeepSpeed's data parallelism over the pipelines"
        )
    settings = {"num_stages": place.pipeline_parallel, "boundaries": list(place.boundaries)}
    command = (
        f"LayerwisePipelineModule(layers, num_stages={place.pipeline_parallel}, "
        f"boundaries={list(place.boundaries)})"
    )
    return EngineSettings(
        engine="deepspeed", settings=settings, command=command, expressible=True, notes=tuple(notes)
    )


EMITTERS = {
    "megatron": emit_megatron,
    "vllm": emit_vllm,
    "sglang": emit_sglang,
    "trtllm": emit_trtllm,
    "deepspeed": emit_deepspeed,
}


def emit(model: ModelSpec, layout: Layout, engines: tuple[str, ...] = ENGINES) -> dict:
    """{engine: EngineSettings} for the layout."""
    place = placement(model, layout)
    return {engine: EMITTERS[engine](place) for engine in engines}


def emit_dict(settings: EngineSettings) -> dict:
    return {
        "settings": settings.settings,
        "command": settings.command,
        "expressible": settings.expressible,
        "notes": list(settings.notes),
    }


def emit_text(title: str, found: dict) -> str:
    """The settings of each engine, with their notes, under a title."""
    lines = [title, f"({PREDICTED_FOR})"]
    for engine, settings in found.items():
        mark = "" if settings.expressible else "  [cannot run the plan as placed]"
        lines.append(f"  {engine:<10}{settings.command}{mark}")
        lines += [f"  {'':<10}- {note}" for note in settings.notes]
    return "\n".join(lines)
