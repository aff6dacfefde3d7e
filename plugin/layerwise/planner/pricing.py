"""Price a fixed placement: its prefill pipeline, one decode step and its memory per GPU.

Both layouts are priced by these functions on the same chunks (docs/cost-model.md). `price`
composes them: which stages keep their weights in L2, the decode step (decode_figures), each
stage's times and bytes (stage_plans, stage_memory), then the prefill pipeline over the
stages (prefill_figures).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from layerwise.config.sections import Workload
from layerwise.costmodel.pipeline import (
    bubble_fraction,
    decode_period,
    on_shared_cores,
    pipeline_time,
    utilisation,
)
from layerwise.hardware.spec import HardwareSpec
from layerwise.model.spec import ModelSpec
from layerwise.partition.search import PartitionProblem, stage_costs
from layerwise.planner.choose import best_of, fitting_split
from layerwise.planner.inputs import PlanInputs
from layerwise.planner.records import Layout, StagePlan
from layerwise.planner.setting import (
    Setting,
    batch_bytes,
    boundary_sizes,
    chunk_candidates,
    chunk_unit,
    decode_chunk,
    divisor_ladder,
    engine_costs,
    layer_costs,
    prefill_chunk,
    prefix,
    problem,
    resident_sizes,
    stage_buffers,
    weight_sizes,
)


@dataclass(frozen=True, kw_only=True)
class PrefillFigures:
    """One replica batch of `micro_batches` chunks through the pipeline, for all replicas."""

    micro_batches: int
    prefill_s: float
    tps: float
    bubble_fraction: float
    utilisation: float
    comm_fraction: float


@dataclass(frozen=True, kw_only=True)
class DecodeFigures:
    """The fastest decode step of the replica's sequences (decode_step), on shared cores."""

    micro_batches: int
    stage_times: tuple[float, ...]
    """One decode micro-batch through each stage (StagePlan.decode_s)."""
    tpot_s: float
    streamed: bool
    tpot_without_l2_s: float
    """tpot_s with every stage's weights read from HBM."""


def price(
    inputs: PlanInputs, setting: Setting, chunk_tokens: int, boundaries: tuple[int, ...]
) -> Layout:
    """Price a fixed placement: the prefill pipeline, one decode step and peak memory per GPU."""
    placed = problem(inputs, setting, chunk_tokens)
    weights = stage_weights(inputs, setting, boundaries)
    in_l2 = [0 < held <= inputs.l2_budget_bytes for held in weights]
    decode = decode_figures(inputs, setting, boundaries, placed, in_l2)
    stages = stage_plans(
        inputs, setting, chunk_tokens, boundaries, placed, weights, in_l2, decode.stage_times
    )
    prefill = prefill_figures(stages, setting, inputs.workload, inputs.gpu, chunk_tokens)
    return _layout(inputs, setting, chunk_tokens, stages, prefill, decode)


def _layout(
    inputs: PlanInputs,
    setting: Setting,
    chunk_tokens: int,
    stages: tuple[StagePlan, ...],
    prefill: PrefillFigures,
    decode: DecodeFigures,
) -> Layout:
    """The Layout of priced stages and figures, with the chunk's shape."""
    unit = chunk_unit(inputs, setting)
    tiles = chunk_tile_bytes(inputs.model, inputs.dtype_bytes, chunk_tokens)
    return Layout(
        mode=setting.mode,
        grid=setting.grid,
        tensor_parallel=setting.tp,
        replicas=setting.replicas,
        chunk_tokens=chunk_tokens,
        micro_batches=prefill.micro_batches,
        micro_batch_rows=chunk_tokens // unit if unit > 1 else chunk_tokens,
        chunk_fits_l2=tiles <= inputs.l2_budget_bytes,
        stages=stages,
        prefill_s=prefill.prefill_s,
        tps=prefill.tps,
        tpot_s=decode.tpot_s,
        decode_micro_batches=decode.micro_batches,
        decode_streamed=decode.streamed,
        decode_tps=setting.replicas * setting.sequences / decode.tpot_s,
        bubble_fraction=prefill.bubble_fraction,
        utilisation=prefill.utilisation,
        comm_fraction=prefill.comm_fraction,
        memory_bytes_per_gpu=max(stage.memory_bytes for stage in stages),
        tpot_without_l2_s=decode.tpot_without_l2_s,
    )


def chunk_tile_bytes(model: ModelSpec, dtype_bytes: int, chunk_tokens: int) -> float:
    """A chunk's input and output hidden-state tiles: 2 x tokens x hidden x dtype bytes."""
    return 2 * chunk_tokens * model.hidden * dtype_bytes


def stage_weights(inputs: PlanInputs, setting: Setting, boundaries: tuple[int, ...]) -> list[float]:
    """Weight bytes per GPU of each stage."""
    sums = prefix(weight_sizes(inputs, setting))
    return [sums[stop] - sums[first] for first, stop in zip(boundaries, boundaries[1:])]


def prefill_compute(
    inputs: PlanInputs, setting: Setting, chunk_tokens: int, boundaries: tuple[int, ...]
) -> list[float]:
    """Compute seconds of one chunk on each stage (its layers, without TP or hop transfers)."""
    chunk = prefill_chunk(inputs.workload, chunk_tokens)
    sums = prefix(tuple(cost.compute_s for cost in layer_costs(inputs, setting, chunk)))
    return [sums[stop] - sums[first] for first, stop in zip(boundaries, boundaries[1:])]


def stage_memory(
    inputs: PlanInputs,
    setting: Setting,
    chunk_tokens: int,
    boundaries: tuple[int, ...],
    sizes: tuple[float, ...],
) -> list[float]:
    """Peak bytes per GPU of each stage: its layers' weights and KV cache, its activation
    buffers (stage_buffers, given the chunk's boundary sizes), plus the batch's inputs on the
    first stage and its outputs on the last (batch_bytes)."""
    resident = prefix(resident_sizes(inputs, setting))
    batch_in, batch_out = batch_bytes(inputs, setting)
    last = setting.num_stages - 1
    return [
        resident[stop]
        - resident[first]
        + stage_buffers(inputs, setting, chunk_tokens, sizes, first, stop)
        + batch_in * (s == 0)
        + batch_out * (s == last)
        for s, (first, stop) in enumerate(zip(boundaries, boundaries[1:]))
    ]


def stage_plans(
    inputs: PlanInputs,
    setting: Setting,
    chunk_tokens: int,
    boundaries: tuple[int, ...],
    placed: PartitionProblem,
    weights: Sequence[float],
    in_l2: Sequence[bool],
    decode_times: Sequence[float],
) -> tuple[StagePlan, ...]:
    """Replica 0's stages, given their weights, L2 residency and decode times: memory
    (stage_memory), prefill compute, and communication = a chunk's total time on the stage
    (stage_costs: hops and TP collectives included) less its compute."""
    memory = stage_memory(inputs, setting, chunk_tokens, boundaries, placed.boundary_bytes)
    compute = prefill_compute(inputs, setting, chunk_tokens, boundaries)
    totals = stage_costs(placed, boundaries)
    return tuple(
        StagePlan(
            index=s,
            ranks=ranks,
            first_layer=boundaries[s],
            stop_layer=boundaries[s + 1],
            weight_bytes=weights[s],
            memory_bytes=memory[s],
            weights_fit_l2=in_l2[s],
            prefill_compute_s=compute[s],
            prefill_comm_s=totals[s] - compute[s],
            decode_s=decode_times[s],
        )
        for s, ranks in enumerate(setting.stage_ranks)
    )


def on_cores(
    gpu: HardwareSpec,
    setting: Setting,
    run_s: float,
    pipeline_s: float,
    micro_batches: int,
    times: Sequence[float],
) -> float:
    """A run's seconds: the engine's run cost `run_s`, then the pipeline of `micro_batches`
    through stages of `times`, which on CPU ranks is no faster than every rank of a stage
    (replicas x TP of them) busy on the GPU's shared cores (pipeline.on_shared_cores). The run
    cost is added after the busy time, not overlapped: it is the engine's barrier and set-up,
    paid while the ranks wait for each other (a 4 x 1 mock-gpt rank computes 16 ms, then
    waits 5 ms in barriers: docs/results.md)."""
    busy = setting.replicas * setting.tp * micro_batches * sum(times)
    return run_s + on_shared_cores(pipeline_s, busy, gpu.shared_cores)


def prefill_figures(
    stages: Sequence[StagePlan],
    setting: Setting,
    workload: Workload,
    gpu: HardwareSpec,
    chunk_tokens: int,
) -> PrefillFigures:
    """The replica batch's chunks through the stages (pipeline_time), plus the engine's cost
    per run and per micro-batch on each stage; TPS = replicas x batch tokens / seconds."""
    micro_batches = setting.sequences * workload.seq_len // chunk_tokens
    per_run, per_micro_batch = engine_costs(gpu, setting.mode)
    times = [stage.prefill_s + per_micro_batch for stage in stages]
    pipeline = pipeline_time(times, micro_batches)
    prefill = on_cores(gpu, setting, per_run, pipeline, micro_batches, times)
    return PrefillFigures(
        micro_batches=micro_batches,
        prefill_s=prefill,
        tps=setting.replicas * setting.sequences * workload.seq_len / prefill,
        bubble_fraction=max(0.0, bubble_fraction(times, micro_batches)),
        utilisation=utilisation(times, micro_batches),
        comm_fraction=sum(stage.prefill_comm_s for stage in stages) / sum(times),
    )


def decode_figures(
    inputs: PlanInputs,
    setting: Setting,
    boundaries: tuple[int, ...],
    placed: PartitionProblem,
    in_l2: list[bool],
) -> DecodeFigures:
    """The fastest decode step with the weights `in_l2` read from L2, and the fastest with
    every weight read from HBM (what L2 residency changed)."""
    micro_batches, times, step, streamed = decode_step(inputs, setting, boundaries, placed, in_l2)
    _, times_from_hbm, step_from_hbm, _ = (
        decode_step(inputs, setting, boundaries, placed, [False] * len(in_l2))
        if any(in_l2)
        else (0, times, step, streamed)
    )
    return DecodeFigures(
        micro_batches=micro_batches,
        stage_times=tuple(times),
        tpot_s=step,
        streamed=streamed,
        tpot_without_l2_s=step_from_hbm,
    )


def decode_stage_times(
    inputs: PlanInputs,
    setting: Setting,
    boundaries: tuple[int, ...],
    sequences: int,
    placed: PartitionProblem,
    in_l2: list[bool],
) -> list[float]:
    """One decode micro-batch of `sequences` through each stage (weights read from L2 where
    `in_l2`), hops over the prefill problem's links included: token ids into stage 0, logits
    out of the head."""
    step = decode_chunk(inputs.workload, sequences)
    per_micro_batch = engine_costs(inputs.gpu, setting.mode)[1]
    sums = {
        fits: prefix(tuple(c.total_s for c in layer_costs(inputs, setting, step, fits)))
        for fits in set(in_l2)
    }
    sizes, hops, last = boundary_sizes(inputs, step), placed.links, setting.num_stages - 1
    times = []
    for s, fits in enumerate(in_l2):
        first, stop = boundaries[s], boundaries[s + 1]
        hop_in = hops[s - 1].time(sizes[first]) if s > 0 else 0.0
        hop_out = hops[s].time(sizes[stop]) if s < last else 0.0
        times.append(per_micro_batch + hop_in + sums[fits][stop] - sums[fits][first] + hop_out)
    return times


def decode_step(
    inputs: PlanInputs,
    setting: Setting,
    boundaries: tuple[int, ...],
    placed: PartitionProblem,
    in_l2: list[bool],
) -> tuple[int, list[float], float, bool]:
    """The fastest decode step of all the replica's sequences: (micro-batches, stage times of
    one micro-batch, seconds per step, streamed). Splitting pays when the pipeline can stream
    steps (micro-batches >= stages keep every stage busy) or when attention over the KV cache,
    not the weights, dominates a stage. The engine's run cost is spread over the steps when
    they stream, and the step is priced on the GPU's shared cores (on_cores). The setting's
    decode_micro_batches fixes the count, or "auto" tries divisor_ladder's."""
    options = []
    steps = max(1, inputs.workload.decode_steps)
    chosen = setting.decode_micro_batches
    candidates = divisor_ladder(setting.sequences) if chosen == "auto" else [chosen]
    per_run = engine_costs(inputs.gpu, setting.mode)[0]
    for micro_batches in candidates:
        sequences = setting.sequences // micro_batches
        times = decode_stage_times(inputs, setting, boundaries, sequences, placed, in_l2)
        period, streamed = decode_period(times, micro_batches, steps)
        run_share = per_run / (steps if streamed else 1)
        period = on_cores(inputs.gpu, setting, run_share, period, micro_batches, times)
        options.append((period, micro_batches, times, streamed))
    step, micro_batches, times, streamed = min(options, key=lambda option: option[:2])
    return micro_batches, times, step, streamed


def price_split(
    inputs: PlanInputs,
    setting: Setting,
    micro_batches: int | str,
    boundaries: tuple[int, ...],
    field: str,
    split: tuple[int, ...],
) -> Layout:
    """A forced split (config key `field` = `split`, at `boundaries`) at every chunk size
    (pricing a fixed split is cheap): the best chunking within HBM, else CapacityError naming
    the stage that does not fit."""
    priced = [
        price(inputs, setting, chunk, boundaries)
        for chunk in chunk_candidates(inputs, setting, micro_batches)
    ]
    fits = fitting_split(inputs.gpu, priced, field)
    return replace(best_of(inputs.gpu, fits), forced_split=split)


def device_tpot(inputs: PlanInputs, layout: Layout) -> float:
    """A priced layout's decode step without this runtime's host time: the profile's layer host
    times and engine costs set to zero, its placement, chunking, decode micro-batches and L2
    residency kept. Priced for the layouts a plan reports, not inside the search."""
    gpu = replace(inputs.gpu, layer_host_us={}, schedule_us={})
    bare = replace(inputs, gpu=gpu)
    setting = Setting(
        mode=layout.mode,
        tp=layout.tensor_parallel,
        replicas=layout.replicas,
        grid=layout.grid,
        sequences=inputs.workload.batch_size // layout.replicas,
        decode_micro_batches=layout.decode_micro_batches,
    )
    boundaries = (0, *(stage.stop_layer for stage in layout.stages))
    placed = problem(bare, setting, layout.chunk_tokens)
    in_l2 = [stage.weights_fit_l2 for stage in layout.stages]
    return decode_figures(bare, setting, boundaries, placed, in_l2).tpot_s
