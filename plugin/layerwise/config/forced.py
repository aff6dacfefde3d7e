"""Checks of a forced split (baseline.stage_layers, layerwise.stage_layers) against the model and
the layout, so a split the planner would run is one the runtime and megatron-core can build.

Units differ as the runtimes count: the baseline's entries are transformer blocks (megatron's
num_layers; the embedding and LM head join the first and last stage), the layer-wise entries
pipeline layers (ModelSpec.pipeline_layers: with a vocabulary the embedding and LM head are
layers of their own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from layerwise.model.spec import ModelSpec

if TYPE_CHECKING:
    from layerwise.config.sections import LayerwiseOptions


def shown(split: tuple[int, ...]) -> str:
    """A split as the config writes it: [3, 1, 3, 1]."""
    return f"[{', '.join(map(str, split))}]"


def _stages(indices: list[int], split: tuple[int, ...]) -> str:
    """'stage 1 holds 0' or 'stages 0, 2 hold 3, 5'."""
    many = len(indices) > 1
    return (
        f"stage{'s' * many} {', '.join(map(str, indices))} hold{'' if many else 's'} "
        f"{', '.join(str(split[s]) for s in indices)}"
    )


def layerwise_split_problems(model: ModelSpec, gpus: int, options: LayerwiseOptions) -> list[str]:
    """layerwise.stage_layers: entries >= 0 summing to the model's pipeline layers, one per
    stage (gpus / replicas; under replicas "auto" its length fixes the stages, so it must
    divide the GPUs)."""
    split = options.stage_layers
    if split is None:
        return []
    field = f"layerwise.stage_layers = {shown(split)}"
    if not split:
        return [f"{field}: needs one entry per pipeline stage, got none"]
    problems = []
    negative = [s for s, count in enumerate(split) if count < 0]
    if negative:
        problems.append(
            f"{field}: {_stages(negative, split)} pipeline layers; a stage holds >= 0 (0: an "
            f"empty stage that forwards activations)"
        )
    total = sum(split)
    if total != model.pipeline_layers:
        problems.append(f"{field} sums to {total}, but {_layers_told(model)}")
    return problems + _length_problems(field, len(split), gpus, options.replicas)


def _layers_told(model: ModelSpec) -> str:
    """How many pipeline layers the model has, and why the embedding and head count."""
    if not model.vocab_size:
        return f"the model has {model.pipeline_layers} pipeline layers (model.num_layers)"
    return (
        f"the model has {model.pipeline_layers} pipeline layers: model.num_layers = "
        f"{model.num_layers} blocks + the token embedding + the LM head (with a vocabulary "
        f"the embedding and the LM head count as layers of their own)"
    )


def _length_problems(field: str, length: int, gpus: int, replicas: int | str) -> list[str]:
    """One entry per stage of a replica: gpus / replicas stages, or under "auto" a length
    that divides the GPUs (the replicas are then gpus / length)."""
    if replicas == "auto":
        if gpus % length == 0:
            return []
        return [
            f"{field} has {length} entries (stages), which must divide hardware.gpus = {gpus}: "
            f'with layerwise.replicas "auto" the split fixes the stages, replicas = gpus / '
            f"stages"
        ]
    if gpus % replicas or length == gpus // replicas:
        return []  # a count that does not divide the GPUs is replica_problems' to report
    return [
        f"{field} has {length} entries, but hardware.gpus / layerwise.replicas = {gpus} / "
        f"{replicas} = {gpus // replicas} stages (one entry per stage)"
    ]


def baseline_split_problems(
    model: ModelSpec, tp: int, pp: int, split: tuple[int, ...] | None
) -> list[str]:
    """baseline.stage_layers: one entry per stage, summing to model.num_layers, each >= 1 block,
    the middle stages equal (what megatron-core can express), even under TP for dense models."""
    if split is None:
        return []
    field = f"baseline.stage_layers = {shown(split)}"
    problems = []
    if len(split) != pp:
        problems.append(
            f"{field} has {len(split)} entries, but baseline.pipeline_parallel = {pp} stages "
            f"(one entry per stage)"
        )
    total = sum(split)
    if total != model.num_layers:
        ends = (
            "; the embedding and LM head are not entries: they join the first and last stage"
            if model.vocab_size
            else ""
        )
        problems.append(
            f"{field} sums to {total} blocks, but model.num_layers = {model.num_layers} "
            f"(megatron counts transformer blocks{ends})"
        )
    return problems + _megatron_problems(field, model, tp, split)


def _megatron_problems(field: str, model: ModelSpec, tp: int, split: tuple[int, ...]) -> list:
    """What megatron-core cannot build: an empty stage, unequal middle stages, and for dense
    models under TP an odd count (layers pair up column- then row-parallel)."""
    problems = []
    empty = [s for s, count in enumerate(split) if count < 1]
    if empty:
        problems.append(
            f"{field}: {_stages(empty, split)} blocks; megatron-core builds >= 1 transformer "
            f"block on every pipeline stage"
        )
    middle = split[1:-1]
    if len(set(middle)) > 1:
        problems.append(
            f"{field}: the middle stages hold {', '.join(map(str, middle))} blocks; "
            f"megatron-core expresses a split only as an even one or by "
            f"num_layers_in_first_pipeline_stage / num_layers_in_last_pipeline_stage around "
            f"equal middle stages ([first, m, ..., m, last])"
        )
    odd = [s for s, count in enumerate(split) if count % 2]
    if model.kind == "dense" and tp > 1 and odd:
        problems.append(
            f"{field}: {_stages(odd, split)} blocks, an odd number; dense layers pair up under "
            f"tensor parallelism (baseline.tensor_parallel = {tp}; column- then row-parallel, "
            f"as Megatron's MLP), so every stage needs an even count"
        )
    return problems
