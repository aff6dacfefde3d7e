"""Cross-field checks of a config: layout against world size, model against TP and PP."""

import dataclasses

from layerwise.config.forced import baseline_split_problems, layerwise_split_problems
from layerwise.config.replicas import (
    decode_micro_batch_problems,
    micro_batch_problems,
    replica_problems,
)
from layerwise.config.sections import BaselineOptions, HardwareConfig, LayerwiseOptions, Workload
from layerwise.model.spec import ModelSpec
from layerwise.planner.splits import has_split


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
        problems += layerwise_split_problems(model, hardware.gpus, layerwise)
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
    problems += baseline_split_problems(model, tp, pp, baseline.stage_layers)
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
