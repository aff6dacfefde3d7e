"""The two layouts as stage plans: Megatron's TP x PP and the cache-aware layer-wise pipeline.

Both are priced by the same cost model on the same chunks. Each picks its micro-batching, and
the layer-wise layout also its layer ranges, to maximise predicted prefill tokens/s; near-ties
(1%) go to a chunk whose activation tiles fit the L2 budget (where the profile measured an L2
gain), then to the lower TPOT, then to the smaller chunk (less memory). Layer indices are
pipeline-layer indices (ModelSpec.role).
The layer-wise replica count ("auto") is the best for the run's objective (best_for).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from layerwise.config.replicas import searched_counts
from layerwise.config.sections import Mode, Objective, RunConfig
from layerwise.costmodel.pipeline import (
    bubble_fraction,
    decode_period,
    on_shared_cores,
    pipeline_time,
    utilisation,
)
from layerwise.errors import CapacityError
from layerwise.partition.search import PartitionProblem, partition, stage_costs
from layerwise.planner.grid import RankGrid, layerwise_grid
from layerwise.planner.setting import (
    Setting,
    batch_bytes,
    boundary_sizes,
    chunk_candidates,
    chunk_unit,
    decode_chunk,
    divisor_ladder,
    dtype_bytes,
    engine_costs,
    l2_budget,
    layer_costs,
    prefill_chunk,
    prefix,
    problem,
    resident_sizes,
    stage_buffers,
    weight_sizes,
)

TIE_TOLERANCE = 0.01


@dataclass(frozen=True)
class StagePlan:
    """One pipeline stage of replica 0, per GPU (the GPUs of a TP group are alike); it holds
    pipeline layers [first_layer, stop_layer)."""

    index: int
    ranks: tuple[int, ...]
    first_layer: int
    stop_layer: int
    weight_bytes: float
    memory_bytes: float
    weights_fit_l2: bool
    prefill_compute_s: float
    prefill_comm_s: float
    decode_s: float
    """One decode micro-batch through this stage, transfers included."""

    @property
    def num_layers(self) -> int:
        return self.stop_layer - self.first_layer

    @property
    def prefill_s(self) -> float:
        """One chunk through this stage, transfers in and out included."""
        return self.prefill_compute_s + self.prefill_comm_s


@dataclass(frozen=True)
class Layout:
    """A placement with its chunking and predicted figures (prefill figures for all replicas)."""

    mode: Mode
    grid: RankGrid
    """Which rank runs which replica, stage and tensor shard."""
    tensor_parallel: int
    replicas: int
    chunk_tokens: int
    micro_batches: int
    micro_batch_rows: int
    chunk_fits_l2: bool
    stages: tuple[StagePlan, ...]
    prefill_s: float
    tps: float
    tpot_s: float
    """Seconds per decode step of the replica's whole batch: a sequence's time per token."""
    decode_micro_batches: int
    decode_streamed: bool
    """Decode steps stream through the pipeline (decode_micro_batches >= stages), else each
    step fills and drains it (pipeline.decode_period)."""
    decode_tps: float
    bubble_fraction: float
    utilisation: float
    comm_fraction: float
    memory_bytes_per_gpu: float
    notes: tuple[str, ...] = ()
    tpot_without_l2_s: float = 0.0
    """tpot_s with every stage's weights read from HBM: what L2 residency changed."""


def _fits_l2(config: RunConfig, weights: float) -> bool:
    return 0 < weights <= l2_budget(config)


def decode_stage_times(
    config: RunConfig,
    setting: Setting,
    boundaries: tuple[int, ...],
    sequences: int,
    placed: PartitionProblem,
    in_l2: list[bool],
) -> list[float]:
    """One decode micro-batch of `sequences` through each stage (weights read from L2 where
    `in_l2`), hops over the prefill problem's links included: token ids into stage 0, logits
    out of the head."""
    step, (_, per_micro_batch) = decode_chunk(config, sequences), engine_costs(config, setting.mode)
    sums = {
        fits: prefix(tuple(c.total_s for c in layer_costs(config, setting, step, fits)))
        for fits in set(in_l2)
    }
    sizes, hops, last = boundary_sizes(config, step), placed.links, setting.num_stages - 1
    times = []
    for s, fits in enumerate(in_l2):
        first, stop = boundaries[s], boundaries[s + 1]
        hop_in = hops[s - 1].time(sizes[first]) if s > 0 else 0.0
        hop_out = hops[s].time(sizes[stop]) if s < last else 0.0
        times.append(per_micro_batch + hop_in + sums[fits][stop] - sums[fits][first] + hop_out)
    return times


def decode_step(
    config: RunConfig,
    setting: Setting,
    boundaries: tuple[int, ...],
    placed: PartitionProblem,
    in_l2: list[bool],
) -> tuple[int, list[float], float, bool]:
    """The fastest decode step of all the replica's sequences: (micro-batches, stage times of
    one micro-batch, seconds per step, streamed). Splitting pays when the pipeline can stream
    steps (micro-batches >= stages keep every stage busy) or when attention over the KV cache,
    not the weights, dominates a stage."""
    options = []
    steps = max(1, config.workload.decode_steps)
    chosen = (
        config.baseline if setting.mode == "baseline" else config.layerwise
    ).decode_micro_batches
    candidates = divisor_ladder(setting.sequences) if chosen == "auto" else [chosen]
    for micro_batches in candidates:
        sequences = setting.sequences // micro_batches
        times = decode_stage_times(config, setting, boundaries, sequences, placed, in_l2)
        period, streamed = decode_period(times, micro_batches, steps)
        period += engine_costs(config, setting.mode)[0] / (steps if streamed else 1)
        options.append((period, micro_batches, times, streamed))
    step, micro_batches, times, streamed = min(options, key=lambda option: option[:2])
    return micro_batches, times, step, streamed


def price(
    config: RunConfig, setting: Setting, chunk_tokens: int, boundaries: tuple[int, ...]
) -> Layout:
    """Price a fixed placement: the prefill pipeline, one decode step and peak memory per GPU."""
    model, b, tp = config.model, dtype_bytes(config), setting.tp
    placed = problem(config, setting, chunk_tokens)
    totals = stage_costs(placed, boundaries)
    weights, resident = (
        prefix(weight_sizes(config, setting)),
        prefix(resident_sizes(config, setting)),
    )
    batch_in, batch_out = batch_bytes(config, setting)
    compute_sums = prefix(
        tuple(
            c.compute_s for c in layer_costs(config, setting, prefill_chunk(config, chunk_tokens))
        )
    )
    in_l2 = [
        _fits_l2(config, weights[stop] - weights[first])
        for first, stop in zip(boundaries, boundaries[1:])
    ]
    decode_micro_batches, decode_times, tpot, streamed = decode_step(
        config, setting, boundaries, placed, in_l2
    )
    _, times_from_hbm, tpot_from_hbm, _ = (
        decode_step(config, setting, boundaries, placed, [False] * len(in_l2))
        if any(in_l2)
        else (0, decode_times, tpot, streamed)
    )
    last = setting.num_stages - 1
    stages = []
    for s, ranks in enumerate(setting.stage_ranks):
        first, stop = boundaries[s], boundaries[s + 1]
        memory = (
            resident[stop]
            - resident[first]
            + stage_buffers(config, setting, chunk_tokens, placed.boundary_bytes, first, stop)
            + batch_in * (s == 0)
            + batch_out * (s == last)
        )
        compute = compute_sums[stop] - compute_sums[first]
        stages.append(
            StagePlan(
                s,
                ranks,
                first,
                stop,
                weights[stop] - weights[first],
                memory,
                in_l2[s],
                compute,
                totals[s] - compute,
                decode_times[s],
            )
        )
    micro_batches = setting.sequences * config.workload.seq_len // chunk_tokens
    per_run, per_micro_batch = engine_costs(config, setting.mode)
    times = [stage.prefill_s + per_micro_batch for stage in stages]
    copies, cores = setting.replicas * tp, config.gpu.shared_cores  # ranks per stage
    prefill = on_shared_cores(
        per_run + pipeline_time(times, micro_batches), copies * micro_batches * sum(times), cores
    )
    tpot = on_shared_cores(tpot, copies * decode_micro_batches * sum(decode_times), cores)
    tpot_from_hbm = on_shared_cores(
        tpot_from_hbm, copies * decode_micro_batches * sum(times_from_hbm), cores
    )
    unit = chunk_unit(config, setting)
    return Layout(
        setting.mode,
        setting.grid,
        tp,
        setting.replicas,
        chunk_tokens,
        micro_batches,
        chunk_tokens // unit if unit > 1 else chunk_tokens,
        2 * chunk_tokens * model.hidden * b <= l2_budget(config),
        tuple(stages),
        prefill,
        setting.replicas * setting.sequences * config.workload.seq_len / prefill,
        tpot,
        decode_micro_batches,
        streamed,
        setting.replicas * setting.sequences / tpot,
        max(0.0, bubble_fraction(times, micro_batches)),
        utilisation(times, micro_batches),
        sum(stage.prefill_comm_s for stage in stages) / sum(times),
        max(stage.memory_bytes for stage in stages),
        tpot_without_l2_s=tpot_from_hbm,
    )


def best_of(config: RunConfig, layouts: list[Layout]) -> Layout:
    """Highest tokens/s; near-ties go to a chunk whose tiles fit the L2 budget (only where the
    profile measured an L2 gain), then to the lower TPOT, then to the smaller chunk."""
    top = max(layout.tps for layout in layouts)
    close = [layout for layout in layouts if layout.tps >= top * (1 - TIE_TOLERANCE)]
    l2_priced = config.gpu.l2_gbs > 0
    return min(
        close,
        key=lambda lay: (l2_priced and not lay.chunk_fits_l2, lay.tpot_s, lay.chunk_tokens),
    )


def fitting(config: RunConfig, layouts: list[Layout], what: str) -> list[Layout]:
    """The layouts within HBM; CapacityError with the smallest need when none is."""
    found = [lay for lay in layouts if lay.memory_bytes_per_gpu <= config.gpu.usable_bytes]
    if not found:
        smallest = min(lay.memory_bytes_per_gpu for lay in layouts)
        raise CapacityError(what, smallest, config.gpu.usable_bytes)
    return found


def layerwise_setting(config: RunConfig, replicas: int) -> Setting:
    """Replica d runs its stage s on rank d * stages + s, so a replica fills whole nodes."""
    grid = layerwise_grid(replicas, config.hardware.gpus // replicas)
    return Setting("layerwise", 1, replicas, grid, config.workload.batch_size // replicas)


def best_for(objective: Objective, layouts: Sequence[Layout]) -> Layout:
    """The best layout for the objective: highest prefill tokens/s (throughput) or lowest TPOT
    (latency). Figures within 1% tie, broken by the other figure (also within 1%), then by the
    deepest pipeline, then by the order given: predictions are not finer than that."""
    throughput, latency = (lambda lay: -lay.tps), (lambda lay: lay.tpot_s)
    first, second = (throughput, latency) if objective == "throughput" else (latency, throughput)
    close = _within_tie(layouts, first)
    closer = _within_tie(close, second)
    return max(closer, key=lambda lay: len(lay.stages))


def _within_tie(layouts: Sequence[Layout], cost) -> list[Layout]:
    """The layouts whose cost (lower is better; negated for tokens/s) is within
    TIE_TOLERANCE of the best."""
    best = min(cost(lay) for lay in layouts)
    band = abs(best) * TIE_TOLERANCE
    return [lay for lay in layouts if cost(lay) <= best + band]


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
    whose prefill time is within the tie band of the best get fully priced (decode included)."""
    setting = layerwise_setting(config, replicas)
    units = setting.sequences * config.workload.seq_len
    placed, error, per_micro_batch = [], None, engine_costs(config, "layerwise")[1]
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
        if seconds <= fastest / (1 - TIE_TOLERANCE)
    ]
    what = f"{setting.num_stages} layer-wise stages of {config.model.pipeline_layers} layers"
    return best_of(config, fitting(config, priced, what))
