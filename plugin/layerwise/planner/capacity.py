"""When the config's own layout does not fit memory: what overflowed, in bytes per GPU, and the
largest batch that fits it.

The partitioner's CapacityError names the first layer or stage it could not place, which for a
KV cache that fills HBM is the embedding; a user planning capacity needs the totals per GPU
(weights, KV cache, against what is usable) and the batch that would fit.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from layerwise.config.sections import RunConfig
from layerwise.errors import CapacityError, ConfigError
from layerwise.planner.baseline import baseline_setting, plan_baseline
from layerwise.planner.inputs import PlanInputs, plan_inputs
from layerwise.planner.layerwise import layerwise_setting, plan_replicas
from layerwise.planner.records import Layout
from layerwise.planner.setting import Setting, resident_sizes, weight_sizes

GIB = 2**30
MAX_BATCH = 2**20  # the largest workload.batch_size a config may give


def own_replicas(config: RunConfig) -> int:
    """The replica count the config's layer-wise layout runs, or 1 (the deepest pipeline, the
    least memory per GPU) under "auto"."""
    replicas = config.layerwise.replicas
    return 1 if replicas == "auto" else replicas


def own_setting(config: RunConfig, inputs: PlanInputs) -> Setting:
    if config.mode == "baseline":
        return baseline_setting(inputs, config.baseline)
    return layerwise_setting(inputs, own_replicas(config), config.layerwise.decode_micro_batches)


def fits_at(config: RunConfig, batch_size: int) -> bool:
    """The config's own layout (its TP x PP, or its replica count) fits at `batch_size`, with
    the planner's micro-batching (the configured counts need not divide another batch)."""
    config = replace(config, workload=replace(config.workload, batch_size=batch_size))
    inputs = plan_inputs(config)
    try:
        if config.mode == "baseline":
            options = replace(config.baseline, micro_batches="auto", decode_micro_batches="auto")
            plan_baseline(inputs, options)
        else:
            options = replace(config.layerwise, micro_batches="auto", decode_micro_batches="auto")
            plan_replicas(inputs, options, own_replicas(config))
    except CapacityError:
        return False
    return True


def largest(fits: Callable[[int], bool], step: int, high: int) -> int | None:
    """The largest multiple of `step` up to `high` for which `fits` (true up to some batch, then
    false: a smaller batch needs no more memory), by bisection; None when `step` itself does
    not fit."""
    low, top = 1, high // step  # in units of step
    if top < 1 or not fits(step):
        return None
    while low < top:
        middle = (low + top + 1) // 2
        if fits(middle * step):
            low = middle
        else:
            top = middle - 1
    return low * step


def largest_batch(config: RunConfig, high: int) -> int | None:
    """The largest batch up to `high` that fits the config's own layout, in multiples of its
    replicas x stages: every replica's sequences then split into as many decode micro-batches
    as it has stages, so decode can stream (a prime batch could not). None: not even one."""
    setting = own_setting(config, plan_inputs(config))
    step = setting.replicas * setting.num_stages
    return largest(lambda batch: fits_at(config, batch), step, high)


def overflow_problems(config: RunConfig) -> list[str]:
    """The per-GPU totals of the config's own layout with its layers spread evenly (weights, KV
    cache of the replica's prompt and decode tokens, against the usable memory), and the
    largest batch that fits it."""
    inputs = plan_inputs(config)
    setting = own_setting(config, inputs)
    stages, work = setting.num_stages, inputs.workload
    weights = sum(weight_sizes(inputs, setting)) / stages
    kv = sum(resident_sizes(inputs, setting)) / stages - weights
    usable = inputs.gpu.usable_bytes
    lines = [
        f"per GPU, the layers spread evenly over {stages} stage(s): weights "
        f"{weights / GIB:.2f} GiB + KV cache {kv / GIB:.2f} GiB ({setting.sequences} sequences x "
        f"{work.seq_len + work.decode_steps} tokens) = {(weights + kv) / GIB:.2f} GiB, before "
        f"activations and workspace, of {usable / GIB:.2f} GiB usable"
    ]
    best = largest_batch(config, work.batch_size - 1)
    step = setting.replicas * stages
    if best is None:
        short = "the weights alone overflow" if weights > usable else "see the totals above"
        lines.append(
            f"no batch of {step} or more fits this layout ({short}): use more GPUs, a layout "
            "with more stages, or shorter sequences"
        )
    else:
        lines.append(
            f"the largest workload.batch_size that fits this layout: {best} (a multiple of "
            f"its {step} replica x stage pipelines, so that decode can stream)"
        )
    return lines


def resolve_max_batch(config: RunConfig) -> RunConfig:
    """A config with workload.batch_size "max" at the largest batch its own layout fits
    (largest_batch, up to the 2**20 a batch may be), marked max_batch; ConfigError when not
    even one batch of its pipelines fits."""
    one = replace(config, workload=replace(config.workload, batch_size=1))
    setting = own_setting(one, plan_inputs(one))
    step = setting.replicas * setting.num_stages
    provisional = replace(config, workload=replace(config.workload, batch_size=step))
    best = largest_batch(provisional, MAX_BATCH)
    if best is None:
        problem = (
            f'workload.batch_size "max": not even {step} sequences fit the {config.mode} layout'
        )
        raise ConfigError([problem, *overflow_problems(provisional)], config.source)
    return replace(config, workload=replace(config.workload, batch_size=best), max_batch=True)


def shaped_as(config: RunConfig, layout: Layout) -> RunConfig:
    """The config set to run `layout`'s mode and sizes, with the planner's micro-batching and
    split (what tune's candidate configs set, as a RunConfig)."""
    auto = {"micro_batches": "auto", "decode_micro_batches": "auto", "stage_layers": None}
    if layout.mode == "baseline":
        sizes = {"tensor_parallel": layout.tensor_parallel, "pipeline_parallel": len(layout.stages)}
        return replace(config, mode="baseline", baseline=replace(config.baseline, **sizes, **auto))
    layerwise = replace(config.layerwise, replicas=layout.replicas, **auto)
    return replace(config, mode="layerwise", layerwise=layerwise)


@dataclass(frozen=True, kw_only=True)
class AtLargest:
    """A layout at the largest batch it fits: its batch (the sequences it decodes at once)
    and its layout priced there; or why none fits."""

    label: str
    batch_size: int | None
    layout: Layout | None
    error: str = ""


def at_largest_batches(config: RunConfig, layouts: tuple[Layout, ...]) -> list[AtLargest]:
    """Each layout at its own largest batch, best decode tokens/s first (then those that fit
    no batch): how serving capacity is compared."""
    from layerwise.planner.plan import label, make_plan  # plan.py imports this module

    found = []
    for layout in layouts:
        shaped = shaped_as(config, layout)
        try:
            resolved = resolve_max_batch(shaped)
            priced = make_plan(resolved).layout(resolved.mode)
        except (ConfigError, CapacityError) as error:
            found.append(
                AtLargest(label=label(layout), batch_size=None, layout=None, error=str(error))
            )
            continue
        found.append(
            AtLargest(label=label(priced), batch_size=resolved.workload.batch_size, layout=priced)
        )
    return sorted(found, key=lambda row: -row.layout.decode_tps if row.layout else math.inf)
