"""Why a layout looks the way it does, in sentences with numbers (shown under each stage table)."""

from layerwise.config.forced import shown
from layerwise.config.sections import BaselineOptions
from layerwise.costmodel.kernels import allreduces_per_layer
from layerwise.errors import CapacityError
from layerwise.hardware.spec import HardwareSpec
from layerwise.model.spec import ModelSpec
from layerwise.partition.search import partition, stage_costs, uniform_boundaries
from layerwise.planner.baseline import baseline_boundaries, baseline_setting
from layerwise.planner.inputs import PlanInputs
from layerwise.planner.layerwise import layerwise_setting
from layerwise.planner.pricing import chunk_tile_bytes
from layerwise.planner.records import Layout
from layerwise.planner.setting import problem
from layerwise.planner.splits import FIRST_KEY, LAST_KEY, block_counts, megatron_keys

MIB = 2**20


def _spread(counts) -> str:
    low, high = min(counts), max(counts)
    return f"{low}-{high}" if low != high else str(low)


def _ends(model: ModelSpec) -> str:
    if not model.vocab_size:
        return ""
    return (
        f"; pipeline layer 0 is the token embedding (on stage 0), layer "
        f"{model.pipeline_layers - 1} the LM head (on the last stage)"
    )


def _placement(inputs: PlanInputs, layout: Layout) -> str:
    stages = len(layout.stages)
    if layout.mode == "baseline":
        counts = block_counts(inputs.model, (0, *(s.stop_layer for s in layout.stages)))
        keys = megatron_keys(counts)
        middle = f", {counts[1]} blocks on each middle stage" if stages > 2 else ""
        split = (
            f"uneven: {FIRST_KEY} = {keys[FIRST_KEY]}, {LAST_KEY} = {keys[LAST_KEY]}"
            f"{middle} (megatron-core TransformerConfig keys)"
            if keys
            else "an even split, Megatron's default layout"
        )
        return (
            f"{inputs.gpus} GPUs = TP {layout.tensor_parallel} (consecutive ranks) x "
            f"PP {stages} stages of {_spread(counts)} blocks: {split}{_ends(inputs.model)}"
        )
    spread = _spread([stage.num_layers for stage in layout.stages])
    return (
        f"{inputs.gpus} GPUs = {layout.replicas} replica(s) x {stages} stages of "
        f"{spread} whole layers; replica d runs stage s on rank d*{stages}+s{_ends(inputs.model)}"
    )


def _chunking(inputs: PlanInputs, layout: Layout) -> str:
    tile = chunk_tile_bytes(inputs.model, inputs.dtype_bytes, layout.chunk_tokens)
    fits = "fit" if layout.chunk_fits_l2 else "exceed"
    return (
        f"chunk {layout.chunk_tokens:,} tokens, {layout.micro_batches:,} micro-batches per "
        f"batch, bubble {layout.bubble_fraction:.1%}; its in+out tiles ({tile / MIB:,.1f} MiB) "
        f"{fits} the L2 budget ({inputs.l2_budget_bytes / MIB:.1f} MiB)"
    )


def _residency(inputs: PlanInputs, layout: Layout) -> str:
    """Which stages' weights fit the L2 budget and how much that changed the predicted TPOT,
    or that L2 is not priced on this profile."""
    resident = sum(stage.weights_fit_l2 for stage in layout.stages)
    largest = max(stage.weight_bytes for stage in layout.stages)
    gpu = inputs.gpu
    if not gpu.l2_gbs:
        return (
            f"L2 not priced: profile {gpu.name} measured no L2 gain (launch/calibrate.py "
            f"measures it); {resident} of {len(layout.stages)} stages' weights fit the budget"
        )
    if resident:
        saved = 1 - layout.tpot_s / layout.tpot_without_l2_s
        return (
            f"{resident} of {len(layout.stages)} stages keep their weights in the L2 budget, "
            f"read at {gpu.l2_gbs:,.0f} GB/s (measured) vs {gpu.hbm_gbs:,.0f} from memory: "
            f"TPOT {layout.tpot_s * 1e3:.3f} ms, {layout.tpot_without_l2_s * 1e3:.3f} ms "
            f"without L2 ({saved:.1%} saved)"
        )
    return (
        f"no stage's weights fit the L2 budget (up to {largest / MIB:,.0f} MiB per GPU vs "
        f"{inputs.l2_budget_bytes / MIB:.1f} MiB): decode streams weights from HBM"
    )


def _bottleneck(layout: Layout) -> str:
    slowest = max(layout.stages, key=lambda stage: stage.prefill_s)
    held = (
        f"layers {slowest.first_layer}-{slowest.stop_layer - 1}"
        if slowest.num_layers
        else "no layers"
    )
    return (
        f"slowest stage {slowest.index} ({held}): "
        f"{slowest.prefill_compute_s * 1e3:.3f} ms compute + "
        f"{slowest.prefill_comm_s * 1e3:.3f} ms communication per chunk"
    )


def _versus_uniform(inputs: PlanInputs, layout: Layout) -> str:
    """The same costs placed by layer count, as DeepSpeed's 'uniform' (and, for identical
    layers, 'parameters') would place them."""
    setting = layerwise_setting(inputs, layout.replicas, layout.decode_micro_batches)
    placed = problem(inputs, setting, layout.chunk_tokens)
    uniform = max(
        stage_costs(placed, uniform_boundaries(inputs.model.pipeline_layers, setting.num_stages))
    )
    ours = max(stage.prefill_s for stage in layout.stages)
    return (
        f"exact min-bottleneck partition: {ours * 1e3:.3f} ms per chunk; DeepSpeed's "
        f"'uniform' split of the same layers: {uniform * 1e3:.3f} ms "
        f"({uniform / ours - 1:+.1%})"
    )


def _slowest_ms(layout: Layout) -> float:
    return max(stage.prefill_s for stage in layout.stages) * 1e3


def _forced_layerwise(inputs: PlanInputs, layout: Layout) -> str:
    """That layerwise.stage_layers placed the layers, against the exact partition of the same
    chunk (one partition: milliseconds)."""
    setting = layerwise_setting(inputs, layout.replicas, layout.decode_micro_batches)
    told = f"layers per stage forced by layerwise.stage_layers = {shown(layout.forced_split)}"
    try:
        exact = partition(problem(inputs, setting, layout.chunk_tokens))
    except CapacityError:
        return f"{told}; the exact partitioner finds no placement within memory at this chunk"
    bounds = exact.boundaries
    counts = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    return (
        f"{told}; the exact partition would be {shown(counts)} at "
        f"{exact.bottleneck * 1e3:.3f} ms per chunk vs {_slowest_ms(layout):.3f} ms"
    )


def _forced_baseline(inputs: PlanInputs, layout: Layout) -> str:
    """That baseline.stage_layers split the blocks, against megatron's split the planner
    would choose for the same chunk."""
    options = BaselineOptions(
        tensor_parallel=layout.tensor_parallel,
        pipeline_parallel=len(layout.stages),
        decode_micro_batches=layout.decode_micro_batches,
    )
    placed = problem(inputs, baseline_setting(inputs, options), layout.chunk_tokens)
    own = baseline_boundaries(inputs.model, layout.tensor_parallel, placed)
    return (
        f"blocks per stage forced by baseline.stage_layers = {shown(layout.forced_split)}; "
        f"the planner's megatron split would be {shown(block_counts(inputs.model, own))} at "
        f"{max(stage_costs(placed, own)) * 1e3:.3f} ms per chunk vs "
        f"{_slowest_ms(layout):.3f} ms"
    )


def _empty_stages(layout: Layout) -> list[str]:
    empty = [stage.index for stage in layout.stages if stage.num_layers == 0]
    if not empty:
        return []
    return [
        f"stages {', '.join(map(str, empty))} hold no layers and only forward activations: "
        f"there a chunk's transfers cost as much as a layer's compute elsewhere, so no "
        f"placement with a layer on them has a lower bottleneck"
    ]


def _tensor_parallel(model: ModelSpec, layout: Layout) -> str:
    reduces = sum(
        allreduces_per_layer(model, layer, layout.tensor_parallel)
        for layer in range(model.pipeline_layers)
    )
    gather = " and one all-gather of the logits (LM head)" if model.vocab_size else ""
    return (
        f"{reduces} all-reduces{gather} per chunk across the model "
        f"(about {reduces // max(1, len(layout.stages))} per stage), "
        f"{layout.comm_fraction:.0%} of stage time is communication"
    )


def _host_time(model: ModelSpec, gpu: HardwareSpec) -> list[str]:
    """A warning when the profile measured host time per layer call, but not for this model's
    kinds of layer (they are then priced without it)."""
    measured = gpu.layer_host_us
    missing = sorted({model.host_key(i) for i in range(model.pipeline_layers)} - set(measured))
    if not measured or not missing:
        return []
    return [
        f"profile {gpu.name} has no host time per call of {', '.join(missing)} layers "
        f"(it has {', '.join(sorted(measured))}): they are priced without it; run "
        f"launch/calibrate.py with this config"
    ]


HOST_BOUND = 0.5  # host time over this share of TPOT is said plainly


def _host_bound(layout: Layout) -> list[str]:
    """Where this runtime's host time is more than half the predicted TPOT, the device-only
    figure beside it (what an engine with CUDA graphs would pay)."""
    device = layout.tpot_device_s
    if device is None or layout.tpot_s - device <= HOST_BOUND * layout.tpot_s:
        return []
    return [
        f"TPOT {layout.tpot_s * 1e3:.3f} ms is host-bound: "
        f"{(layout.tpot_s - device) / layout.tpot_s:.0%} of it is this runtime's host time "
        f"(eager layer calls); PREDICTED, without this runtime's host time (an engine with CUDA "
        f"graphs): {device * 1e3:.3f} ms"
    ]


def explain(inputs: PlanInputs, layout: Layout) -> tuple[str, ...]:
    """The layout's reasons: placement, chunking, bottleneck, L2 residency, host-time gaps, a
    host-bound TPOT, and
    per layout the uniform split it beats (layer-wise) or its TP all-reduces (baseline); a
    forced split (stage_layers) is said so, beside the split the planner would choose."""
    found = [
        _placement(inputs, layout),
        _chunking(inputs, layout),
        _bottleneck(layout),
        _residency(inputs, layout),
        *_host_time(inputs.model, inputs.gpu),
        *_host_bound(layout),
    ]
    if layout.mode == "layerwise":
        forced = layout.forced_split is not None
        found.append((_forced_layerwise if forced else _versus_uniform)(inputs, layout))
        found += [] if forced else _empty_stages(layout)
    else:
        found += [_forced_baseline(inputs, layout)] if layout.forced_split is not None else []
        if layout.tensor_parallel > 1:
            found.append(_tensor_parallel(inputs.model, layout))
    return tuple(found)
