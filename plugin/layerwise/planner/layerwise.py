"""The cache-aware layer-wise layout: replicas of a pipeline of whole layers, placed exactly.

For each chunk size the exact partitioner places the layers (partition.search.partition); the
chunks whose prefill time is within SAME_FIGURE of the fastest are priced in full and the best
chunking is chosen (choose.best_of). The replica count ("auto") is the best for the run's
objective (choose.best_for) of every count searched (replicas.searched_counts).

A forced split (layerwise.stage_layers) replaces the partitioner at the replica count whose
stages it has: every chunk size is priced at its boundaries (choose.fitting_split names a stage
that does not fit). Other replica counts keep the exact partition. Under "auto" the split fixes
the configured count (replicas.configured_replicas).
"""

from itertools import accumulate

from layerwise.config.replicas import configured_replicas, searched_counts
from layerwise.config.sections import Auto, LayerwiseOptions, Objective
from layerwise.costmodel.pipeline import pipeline_time
from layerwise.errors import CapacityError
from layerwise.partition.search import partition
from layerwise.planner.choose import best_for, best_of, fitting
from layerwise.planner.grid import layerwise_grid
from layerwise.planner.inputs import PlanInputs
from layerwise.planner.pricing import price, price_split
from layerwise.planner.records import Layout
from layerwise.planner.setting import Setting, chunk_candidates, engine_costs, problem
from layerwise.planner.tolerances import SAME_FIGURE


def layerwise_setting(
    inputs: PlanInputs, replicas: int, decode_micro_batches: int | Auto
) -> Setting:
    """Replica d runs its stage s on rank d * stages + s, so a replica fills whole nodes."""
    return Setting(
        mode="layerwise",
        tp=1,
        replicas=replicas,
        grid=layerwise_grid(replicas, inputs.gpus // replicas),
        sequences=inputs.workload.batch_size // replicas,
        decode_micro_batches=decode_micro_batches,
    )


def layerwise_options(
    inputs: PlanInputs, options: LayerwiseOptions
) -> tuple[tuple[Layout, ...], CapacityError | None]:
    """The layer-wise layout at every replica count searched (replicas.searched_counts) that
    fits, and the CapacityError of the deepest pipeline that does not (None if all fit): the
    deepest needs the least memory per GPU, so its shortfall is the one worth reporting."""
    counts, _ = searched_counts(inputs.model, inputs.gpus, inputs.workload, options)
    found, error = [], None
    for replicas in counts:
        try:
            found.append(plan_replicas(inputs, options, replicas))
        except CapacityError as failure:
            error = error or failure
    return tuple(found), error


def plan_layerwise(
    inputs: PlanInputs,
    options: LayerwiseOptions,
    objective: Objective,
    replicas: int | None = None,
) -> Layout:
    """The layer-wise layout at `replicas` (default: the configured count, that of a forced
    split under "auto", else the best for the objective of every count searched); raises
    CapacityError if none fits."""
    replicas = replicas or configured_replicas(inputs.gpus, options)
    if replicas != "auto":
        return plan_replicas(inputs, options, replicas)
    found, error = layerwise_options(inputs, options)
    if not found:
        raise error
    return best_for(objective, found)


def forced_boundaries(options: LayerwiseOptions, stages: int) -> tuple[int, ...] | None:
    """Pipeline-layer boundaries of layerwise.stage_layers when it has `stages` entries (the
    replica count it was written for); None: the exact partitioner places the layers."""
    split = options.stage_layers
    if split is None or len(split) != stages:
        return None
    return (0, *accumulate(split))


def plan_replicas(inputs: PlanInputs, options: LayerwiseOptions, replicas: int) -> Layout:
    """The best chunking at `replicas`: of the forced split when it has these stages
    (pricing.price_split), else of the exact partition; raises CapacityError if none fits."""
    setting = layerwise_setting(inputs, replicas, options.decode_micro_batches)
    forced = forced_boundaries(options, setting.num_stages)
    if forced is not None:
        return price_split(
            inputs,
            setting,
            options.micro_batches,
            forced,
            "layerwise.stage_layers",
            options.stage_layers,
        )
    return plan_exact(inputs, setting, options)


def plan_exact(inputs: PlanInputs, setting: Setting, options: LayerwiseOptions) -> Layout:
    """Exact partition for each chunk size; raises CapacityError if none fits. Only the chunks
    whose prefill time is within SAME_FIGURE of the fastest get fully priced (decode included):
    time <= fastest / (1 - SAME_FIGURE) is tokens/s >= the best's x (1 - SAME_FIGURE)."""
    units = setting.sequences * inputs.workload.seq_len
    placed, error, per_micro_batch = [], None, engine_costs(inputs.gpu, "layerwise")[1]
    for chunk in chunk_candidates(inputs, setting, options.micro_batches):
        try:
            found = partition(problem(inputs, setting, chunk))
        except CapacityError as failure:
            error = failure
            continue
        times = [cost + per_micro_batch for cost in found.stage_costs]
        placed.append((pipeline_time(times, units // chunk), chunk, found))
    if not placed:
        raise error
    fastest = min(seconds for seconds, _, _ in placed)
    priced = [
        price(inputs, setting, chunk, found.boundaries)
        for seconds, chunk, found in placed
        if seconds <= fastest / (1 - SAME_FIGURE)
    ]
    what = f"{setting.num_stages} layer-wise stages of {inputs.model.pipeline_layers} layers"
    return best_of(inputs.gpu, fitting(inputs.gpu, priced, what))
