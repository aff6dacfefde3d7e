"""The two layouts as stage plans: Megatron's TP x PP and the cache-aware layer-wise pipeline.

Both are priced by the same cost model on the same chunks. Each picks its micro-batching, and
the layer-wise layout also its layer ranges, to maximise predicted prefill tokens/s; near-ties
(1%) go to a chunk whose activation tiles fit the L2 budget, then to the lower TPOT, then to the
smaller chunk (less memory).
"""

import math
from dataclasses import dataclass

from layerwise.config import Mode, RunConfig, auto_replicas
from layerwise.cost import (
    Chunk,
    bubble_fraction,
    kv_bytes_per_token,
    layer_cost,
    layer_weight_bytes,
    pipeline_time,
    utilisation,
    workspace_bytes,
)
from layerwise.errors import CapacityError
from layerwise.grid import RankGrid, layerwise_grid, megatron_grid
from layerwise.partition import Link, PartitionProblem, partition, stage_costs, uniform_boundaries
from layerwise.specs import DTYPE_BYTES

TIE_TOLERANCE = 0.01
PIPE_BUFFERS = 2  # micro-batches in flight per stage in an inference schedule (DeepSpeed's)


@dataclass(frozen=True)
class StagePlan:
    """One pipeline stage of replica 0, per GPU (the GPUs of a TP group are alike)."""

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
    decode_micro_batches: int
    decode_tps: float
    bubble_fraction: float
    utilisation: float
    comm_fraction: float
    memory_bytes_per_gpu: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Setting:
    """What a layout is priced under: TP degree, rank grid, batch per replica."""

    mode: Mode
    tp: int
    replicas: int
    grid: RankGrid
    sequences: int

    @property
    def num_stages(self) -> int:
        return self.grid.dim("pipe")

    @property
    def stage_ranks(self) -> tuple[tuple[int, ...], ...]:
        """Replica 0's stages, each the ranks of its TP group."""
        return tuple(
            tuple(self.grid.rank(pipe=stage, model=t) for t in range(self.tp))
            for stage in range(self.num_stages)
        )


def dtype_bytes(config: RunConfig) -> int:
    return DTYPE_BYTES[config.run.dtype]


def l2_budget(config: RunConfig) -> float:
    return config.layerwise.l2_budget_fraction * config.gpu.l2_bytes


def chunk_unit(config: RunConfig, setting: Setting) -> int:
    """Tokens a chunk is made of: any token (dense layer-wise) or whole sequences."""
    independent = config.model.tokens_independent and setting.mode == "layerwise"
    return 1 if independent else config.workload.seq_len


def links(config: RunConfig, setting: Setting) -> tuple[Link, ...]:
    """Stage s to s+1 crosses nodes when their first ranks sit on different nodes."""
    per_node, gpu = config.gpu.gpus_per_node, config.gpu
    found = []
    for here, there in zip(setting.stage_ranks, setting.stage_ranks[1:]):
        spec = gpu.intra_node if here[0] // per_node == there[0] // per_node else gpu.inter_node
        found.append(Link(spec.p2p_latency_us * 1e-6, spec.p2p_gbs * 1e9))
    return tuple(found)


def prefill_chunk(config: RunConfig, chunk_tokens: int) -> Chunk:
    seq_len = config.workload.seq_len
    return Chunk(chunk_tokens, max(1, chunk_tokens // seq_len), seq_len, False)


def decode_chunk(config: RunConfig, sequences: int) -> Chunk:
    """One decode step of `sequences` sequences, attending over the prompt's KV cache."""
    return Chunk(sequences, sequences, config.workload.seq_len, True)


def layer_costs(config: RunConfig, setting: Setting, chunk: Chunk, weights_in_l2=False) -> list:
    """Per layer; layers differ only by the dense TP pairing, so at most two are priced."""
    priced = [
        layer_cost(
            config.model,
            config.gpu,
            layer,
            chunk,
            setting.tp,
            dtype_bytes(config),
            l2_budget(config),
            weights_in_l2,
        )
        for layer in range(min(2, config.model.num_layers))
    ]
    return [priced[layer % len(priced)] for layer in range(config.model.num_layers)]


def stage_memory(
    config: RunConfig, setting: Setting, chunk_tokens: int
) -> tuple[float, float, float]:
    """(resident bytes per layer, activation buffers per stage, one replica batch's activations).

    Resident: weights and the KV cache of prompt + decode tokens. Buffers: input and output of
    each in-flight micro-batch plus one layer's workspace. The batch is held twice: the first
    stage keeps its inputs, prepared before the clock starts (like a prefetching data loader),
    and the last stage every micro-batch's output, which DeepSpeed's eval_batch and Megatron's
    forward-only schedule both return.
    """
    model, b, tp, work = config.model, dtype_bytes(config), setting.tp, config.workload
    resident = layer_weight_bytes(model, tp, b) + kv_bytes_per_token(model, tp, b) * (
        setting.sequences * (work.seq_len + work.decode_steps)
    )
    activation = chunk_tokens * model.hidden * b
    buffers = 2 * PIPE_BUFFERS * activation + workspace_bytes(model, chunk_tokens, tp, b)
    batch = setting.sequences * work.seq_len * model.hidden * b
    return resident, buffers, batch


def problem(config: RunConfig, setting: Setting, chunk_tokens: int) -> PartitionProblem:
    """Prefill cost of one chunk per layer, and each stage's room for resident bytes."""
    layers = config.model.num_layers
    costs = layer_costs(config, setting, prefill_chunk(config, chunk_tokens))
    resident, buffers, batch = stage_memory(config, setting, chunk_tokens)
    capacity = [config.gpu.usable_bytes - buffers] * setting.num_stages
    capacity[0] -= batch
    capacity[-1] -= batch
    activation = float(chunk_tokens * config.model.hidden * dtype_bytes(config))
    return PartitionProblem(
        tuple(c.total_s for c in costs),
        (activation,) * (layers + 1),
        (resident,) * layers,
        links(config, setting),
        tuple(capacity),
    )


def divisor_ladder(count: int) -> list[int]:
    """For each power of two up to `count`, the largest divisor of `count` not above it."""
    small = [d for d in range(1, math.isqrt(count) + 1) if count % d == 0]
    divisors = sorted(set(small + [count // d for d in small]))
    return sorted({max(d for d in divisors if d <= 2**k) for k in range(count.bit_length() + 1)})


def chunk_candidates(config: RunConfig, setting: Setting, micro_batches: int | str) -> list[int]:
    """Chunk sizes in tokens that split the batch's units (tokens or sequences) evenly."""
    unit = chunk_unit(config, setting)
    units = setting.sequences * config.workload.seq_len // unit
    if micro_batches != "auto":
        return [units // micro_batches * unit]
    return [d * unit for d in divisor_ladder(units)]


def decode_stage_times(
    config: RunConfig,
    setting: Setting,
    placed: PartitionProblem,
    boundaries: tuple[int, ...],
    sequences: int,
) -> list[float]:
    """One decode micro-batch of `sequences` through each stage, hops in and out included."""
    model, tp = config.model, setting.tp
    step = decode_chunk(config, sequences)
    costs = {fits: layer_costs(config, setting, step, fits) for fits in (False, True)}
    hop_bytes = sequences * model.hidden * dtype_bytes(config)
    times = []
    for s in range(setting.num_stages):
        first, stop = boundaries[s], boundaries[s + 1]
        weights = layer_weight_bytes(model, tp, dtype_bytes(config)) * (stop - first)
        fits = 0 < weights <= l2_budget(config)
        hops = placed.links[max(0, s - 1) : s + 1]
        times.append(
            sum(c.total_s for c in costs[fits][first:stop])
            + sum(hop.time(hop_bytes) for hop in hops)
        )
    return times


def decode_step(
    config: RunConfig, setting: Setting, placed: PartitionProblem, boundaries: tuple[int, ...]
) -> tuple[int, list[float], float]:
    """The fastest decode step of all the replica's sequences: (micro-batches, stage times of
    one micro-batch, step time). Splitting pays when attention over the KV cache, not the
    weights, dominates a stage: micro-batches then overlap across stages."""
    options = []
    for micro_batches in divisor_ladder(setting.sequences):
        times = decode_stage_times(
            config, setting, placed, boundaries, setting.sequences // micro_batches
        )
        options.append((pipeline_time(times, micro_batches), micro_batches, times))
    step, micro_batches, times = min(options, key=lambda option: option[:2])
    return micro_batches, times, step


def price(
    config: RunConfig, setting: Setting, chunk_tokens: int, boundaries: tuple[int, ...]
) -> Layout:
    """Price a fixed placement: the prefill pipeline, one decode step and peak memory per GPU."""
    model, b, tp = config.model, dtype_bytes(config), setting.tp
    placed = problem(config, setting, chunk_tokens)
    totals = stage_costs(placed, boundaries)
    resident, buffers, batch = stage_memory(config, setting, chunk_tokens)
    prefill_costs = layer_costs(config, setting, prefill_chunk(config, chunk_tokens))
    decode_micro_batches, decode_times, tpot = decode_step(config, setting, placed, boundaries)
    stages = []
    for s, ranks in enumerate(setting.stage_ranks):
        first, stop = boundaries[s], boundaries[s + 1]
        weights = layer_weight_bytes(model, tp, b) * (stop - first)
        in_l2 = 0 < weights <= l2_budget(config)
        compute = sum(c.compute_s for c in prefill_costs[first:stop])
        ends = (s == 0) + (s == setting.num_stages - 1)
        stages.append(
            StagePlan(
                s,
                ranks,
                first,
                stop,
                weights,
                resident * (stop - first) + buffers + ends * batch,
                in_l2,
                compute,
                totals[s] - compute,
                decode_times[s],
            )
        )
    micro_batches = setting.sequences * config.workload.seq_len // chunk_tokens
    times = [stage.prefill_s for stage in stages]
    prefill = pipeline_time(times, micro_batches)
    rows = (
        chunk_tokens // chunk_unit(config, setting)
        if chunk_unit(config, setting) > 1
        else chunk_tokens
    )
    return Layout(
        setting.mode,
        setting.grid,
        tp,
        setting.replicas,
        chunk_tokens,
        micro_batches,
        rows,
        2 * chunk_tokens * model.hidden * b <= l2_budget(config),
        tuple(stages),
        prefill,
        setting.replicas * setting.sequences * config.workload.seq_len / prefill,
        tpot,
        decode_micro_batches,
        setting.replicas * setting.sequences / tpot,
        max(0.0, bubble_fraction(times, micro_batches)),
        utilisation(times, micro_batches),
        sum(stage.prefill_comm_s for stage in stages) / sum(times),
        max(stage.memory_bytes for stage in stages),
    )


def best_of(layouts: list[Layout]) -> Layout:
    top = max(layout.tps for layout in layouts)
    close = [layout for layout in layouts if layout.tps >= top * (1 - TIE_TOLERANCE)]
    return min(close, key=lambda lay: (not lay.chunk_fits_l2, lay.tpot_s, lay.chunk_tokens))


def baseline_setting(config: RunConfig) -> Setting:
    """Megatron's rank order: TP groups of consecutive ranks, then pipeline stages."""
    tp, pp = config.baseline.tensor_parallel, config.baseline.pipeline_parallel
    return Setting("baseline", tp, 1, megatron_grid(tp, pp), config.workload.batch_size)


def plan_baseline(config: RunConfig) -> Layout:
    """Equal layer counts per stage (Megatron's default); raises CapacityError if none fits."""
    setting = baseline_setting(config)
    boundaries = uniform_boundaries(config.model.num_layers, setting.num_stages)
    layouts = [
        price(config, setting, chunk, boundaries)
        for chunk in chunk_candidates(config, setting, config.baseline.micro_batches)
    ]
    fitting = [lay for lay in layouts if lay.memory_bytes_per_gpu <= config.gpu.usable_bytes]
    if not fitting:
        smallest = min(lay.memory_bytes_per_gpu for lay in layouts)
        raise CapacityError(
            f"TP={setting.tp} x PP={setting.num_stages} of {config.model.num_layers} layers",
            smallest,
            config.gpu.usable_bytes,
        )
    return best_of(fitting)


def layerwise_setting(config: RunConfig, replicas: int) -> Setting:
    """Replica d runs its stage s on rank d * stages + s, so a replica fills whole nodes."""
    grid = layerwise_grid(replicas, config.hardware.gpus // replicas)
    return Setting("layerwise", 1, replicas, grid, config.workload.batch_size // replicas)


def replicas_of(config: RunConfig) -> int:
    """The configured replica count; "auto" was checked to resolve when the config loaded."""
    if config.layerwise.replicas != "auto":
        return config.layerwise.replicas
    return auto_replicas(config.model, config.hardware.gpus, config.workload.batch_size)


def plan_layerwise(config: RunConfig, replicas: int | None = None) -> Layout:
    """Exact partition for each chunk size; raises CapacityError if none fits. Only the chunks
    whose prefill time is within the tie band of the best get fully priced (decode included)."""
    setting = layerwise_setting(config, replicas or replicas_of(config))
    units = setting.sequences * config.workload.seq_len
    placed, error = [], None
    for chunk in chunk_candidates(config, setting, config.layerwise.micro_batches):
        try:
            found = partition(problem(config, setting, chunk))
        except CapacityError as failure:
            error = failure
            continue
        placed.append((pipeline_time(list(found.stage_costs), units // chunk), chunk, found))
    if not placed:
        raise error
    fastest = min(seconds for seconds, _, _ in placed)
    return best_of(
        [
            price(config, setting, chunk, found.boundaries)
            for seconds, chunk, found in placed
            if seconds <= fastest / (1 - TIE_TOLERANCE)
        ]
    )
