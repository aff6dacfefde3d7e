"""The cache-aware layer-wise layout: replicas of a pipeline of whole layers, placed exactly.

For each chunk size the exact partitioner places the layers (partition.search.partition); the
chunks whose prefill time is within SAME_FIGURE of the fastest are priced in full and the best
chunking is chosen (choose.best_of). The replica count ("auto") is the best for the run's
objective (choose.best_for) of every count searched (replicas.searched_counts).
"""

from layerwise.config.replicas import searched_counts
from layerwise.config.sections import RunConfig
from layerwise.costmodel.pipeline import pipeline_time
from layerwise.errors import CapacityError
from layerwise.partition.search import partition
from layerwise.planner.choose import best_for, best_of, fitting
from layerwise.planner.grid import layerwise_grid
from layerwise.planner.pricing import price
from layerwise.planner.records import Layout
from layerwise.planner.setting import Setting, chunk_candidates, engine_costs, problem
from layerwise.planner.tolerances import SAME_FIGURE


def layerwise_setting(config: RunConfig, replicas: int) -> Setting:
    """Replica d runs its stage s on rank d * stages + s, so a replica fills whole nodes."""
    return Setting(
        mode="layerwise",
        tp=1,
        replicas=replicas,
        grid=layerwise_grid(replicas, config.hardware.gpus // replicas),
        sequences=config.workload.batch_size // replicas,
    )


def layerwise_options(config: RunConfig) -> tuple[tuple[Layout, ...], CapacityError | None]:
    """The layer-wise layout at every replica count searched (replicas.searched_counts) that
    fits, and the CapacityError of the deepest pipeline that does not (None if all fit): the
    deepest needs the least memory per GPU, so its shortfall is the one worth reporting."""
    model, gpus, work = config.model, config.hardware.gpus, config.workload
    counts, _ = searched_counts(model, gpus, work, config.layerwise)
    found, error = [], None
    for replicas in counts:
        try:
            found.append(plan_replicas(config, replicas))
        except CapacityError as failure:
            error = error or failure
    return tuple(found), error


def plan_layerwise(config: RunConfig, replicas: int | None = None) -> Layout:
    """The layer-wise layout at `replicas` (default: the configured count, or for "auto" the
    best for the objective of every count searched); raises CapacityError if none fits."""
    replicas = replicas or config.layerwise.replicas
    if replicas != "auto":
        return plan_replicas(config, replicas)
    found, error = layerwise_options(config)
    if not found:
        raise error
    return best_for(config.objective, found)


def plan_replicas(config: RunConfig, replicas: int) -> Layout:
    """Exact partition for each chunk size; raises CapacityError if none fits. Only the chunks
    whose prefill time is within SAME_FIGURE of the fastest get fully priced (decode included):
    time <= fastest / (1 - SAME_FIGURE) is tokens/s >= the best's x (1 - SAME_FIGURE)."""
    setting = layerwise_setting(config, replicas)
    units = setting.sequences * config.workload.seq_len
    placed, error, per_micro_batch = [], None, engine_costs(config.gpu, "layerwise")[1]
    for chunk in chunk_candidates(config, setting, config.layerwise.micro_batches):
        try:
            found = partition(problem(config, setting, chunk))
        except CapacityError as failure:
            error = failure
            continue
        times = [cost + per_micro_batch for cost in found.stage_costs]
        placed.append((pipeline_time(times, units // chunk), chunk, found))
    if not placed:
        raise error
    fastest = min(seconds for seconds, _, _ in placed)
    priced = [
        price(config, setting, chunk, found.boundaries)
        for seconds, chunk, found in placed
        if seconds <= fastest / (1 - SAME_FIGURE)
    ]
    what = f"{setting.num_stages} layer-wise stages of {config.model.pipeline_layers} layers"
    return best_of(config.gpu, fitting(config.gpu, priced, what))
