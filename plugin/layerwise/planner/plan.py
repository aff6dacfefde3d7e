"""Plans for both layouts: stages, layer ranges, chunking and predicted figures (pure data).

The layer-wise layout is priced at every replica count searched (replicas.searched_counts); the
recommendation is the best for the run's objective of the baseline, as configured, and the best
layer-wise layout (choose.best_for); its reason calls two figures a tie exactly when best_for
does (within tolerances.SAME_FIGURE) and quotes that tolerance."""

from collections.abc import Callable
from dataclasses import replace

from layerwise.config.forced import shown
from layerwise.config.replicas import (
    REPLICA_OPTIONS_MAX_GPUS,
    configured_replicas,
    searched_counts,
)
from layerwise.config.sections import BaselineOptions, LayerwiseOptions, Mode, Objective, RunConfig
from layerwise.costmodel.kernels import model_flops
from layerwise.errors import CapacityError, ConfigError
from layerwise.planner.baseline import plan_baseline
from layerwise.planner.candidates import baseline_options, rank
from layerwise.planner.capacity import overflow_problems
from layerwise.planner.choose import best_for, tpot_cost, tps_cost, within_tie
from layerwise.planner.explain import explain
from layerwise.planner.inputs import PlanInputs, plan_inputs
from layerwise.planner.layerwise import layerwise_options, plan_replicas
from layerwise.planner.pricing import device_tpot
from layerwise.planner.records import Layout, Plan
from layerwise.planner.tolerances import SAME_FIGURE, percent


def roofline_tps(inputs: PlanInputs) -> float:
    """Prefill tokens/s if every GPU ran at the datasheet peak on the model's FLOPs (blocks,
    embedding and LM head)."""
    flops_per_token = model_flops(inputs.model, inputs.workload.seq_len)
    return inputs.gpus * inputs.gpu.peak_tflops * 1e12 / flops_per_token


def _timed(inputs: PlanInputs, layout: Layout) -> Layout:
    """The layout with its device-only TPOT (pricing.device_tpot)."""
    return replace(layout, tpot_device_s=device_tpot(inputs, layout))


def _noted(inputs: PlanInputs, layout: Layout | None) -> Layout | None:
    if layout is None:
        return None
    timed = _timed(inputs, layout)
    return replace(timed, notes=explain(inputs, timed))


def _try(inputs: PlanInputs, build: Callable[[], Layout]) -> tuple[Layout | None, str]:
    """The layout `build` plans, with its notes, or None and why it does not fit."""
    try:
        layout = build()
    except CapacityError as error:
        return None, str(error)
    return _noted(inputs, layout), ""


def label(layout: Layout) -> str:
    """A layout's shape, as the report names it."""
    stages = len(layout.stages)
    if layout.mode == "baseline":
        return f"baseline TP{layout.tensor_parallel} x PP{stages}"
    plural = "s" if layout.replicas != 1 else ""
    return f"layer-wise {layout.replicas} replica{plural} x {stages} stage{'s' * (stages != 1)}"


def _figure(objective: Objective, layout: Layout) -> str:
    if objective == "throughput":
        return f"{layout.tps:,.0f} tokens/s"
    return f"TPOT {layout.tpot_s * 1e3:.3f} ms"


def _tied(baseline: Layout, layerwise: Layout, cost) -> bool:
    """Whether best_for counts the two layouts' figures as a tie (within SAME_FIGURE)."""
    return len(within_tie((baseline, layerwise), cost)) == 2


def _throughput_clause(baseline: Layout, layerwise: Layout) -> str:
    """Which layout has the higher prefill tokens/s and by how much, or that they tie as
    best_for counts ties; then both layouts' communication and bubble shares."""
    higher = max((baseline, layerwise), key=lambda layout: layout.tps)
    lower = layerwise if higher is baseline else baseline
    shares = (
        f"communication is {higher.comm_fraction:.0%} vs {lower.comm_fraction:.0%} of stage "
        f"time, bubble {higher.bubble_fraction:.1%} vs {lower.bubble_fraction:.1%}"
    )
    if _tied(baseline, layerwise, tps_cost):
        return (
            f"the {label(higher)} and the {label(lower)} tie on prefill throughput "
            f"({higher.tps:,.0f} vs {lower.tps:,.0f} tokens/s, within {percent(SAME_FIGURE)}); "
            + shares
        )
    return (
        f"the {label(higher)} has {higher.tps / lower.tps:.2f}x the {label(lower)}'s prefill "
        f"throughput ({higher.tps:,.0f} vs {lower.tps:,.0f} tokens/s); " + shares
    )


def _latency_clause(baseline: Layout, layerwise: Layout) -> str:
    """Which layout has the lower TPOT (and why, for a TP baseline), or that they tie as
    best_for counts ties."""
    faster = min((baseline, layerwise), key=lambda layout: layout.tpot_s)
    slower = layerwise if faster is baseline else baseline
    if _tied(baseline, layerwise, tpot_cost):
        return (
            f"the {label(faster)} and the {label(slower)} tie on TPOT ({faster.tpot_s * 1e3:.3f}"
            f" vs {slower.tpot_s * 1e3:.3f} ms per decode step, within {percent(SAME_FIGURE)})"
        )
    clause = (
        f"the {label(faster)} has the lower TPOT ({faster.tpot_s * 1e3:.3f} vs "
        f"{slower.tpot_s * 1e3:.3f} ms per decode step)"
    )
    if faster is baseline and faster.tensor_parallel > 1:
        clause += (
            f": each GPU reads 1/{faster.tensor_parallel} of every layer's weights (and KV "
            f"cache) per step, in parallel, instead of whole layers one stage after another"
        )
    return clause


def _recommend(
    objective: Objective, baseline: Layout | None, layerwise: Layout | None
) -> tuple[Mode, str]:
    """The best of the baseline and the best layer-wise layout for the objective, and why."""
    if baseline is None or layerwise is None:
        fits = "baseline" if layerwise is None else "layerwise"
        return fits, f"only the {fits} layout fits in memory"
    winner = best_for(objective, (baseline, layerwise))
    clauses = [_throughput_clause(baseline, layerwise), _latency_clause(baseline, layerwise)]
    if objective == "latency":
        clauses.reverse()
    sentences = ". ".join(clause[0].upper() + clause[1:] for clause in clauses)
    return winner.mode, f"{label(winner)} is best for {objective}. {sentences}"


def _configured(
    inputs: PlanInputs,
    options: LayerwiseOptions,
    priced: tuple[Layout, ...],
    best: Layout | None,
    error: str,
) -> tuple[Layout | None, str]:
    """The layer-wise layout the run uses: the best under "auto", else the configured count
    (configured_replicas: a forced split fixes it; priced again when it is not among the
    `priced` ones, to tell why it does not fit)."""
    replicas = configured_replicas(inputs.gpus, options)
    if replicas == "auto":
        return best, "" if best is not None else error
    if best is not None and best.replicas == replicas:
        return best, ""
    for layout in priced:
        if layout.replicas == replicas:
            return _noted(inputs, layout), ""
    return _try(inputs, lambda: plan_replicas(inputs, options, replicas))


def compared_text(plan: Plan) -> str:
    """What the recommendation compared: the baseline's TP x PP shapes and the replica counts
    priced, then the best."""
    config = plan.config
    shapes = sorted(
        (layout.tensor_parallel, len(layout.stages))
        for layout in plan.candidates
        if layout.mode == "baseline"
    )
    baseline = "baseline at TP x PP " + (
        ", ".join(f"{tp}x{pp}" for tp, pp in shapes) if shapes else "none that fit"
    )
    counts = ", ".join(str(replicas) for replicas, _, _ in plan.replica_options) or "none fit"
    subset = (
        f" (over {REPLICA_OPTIONS_MAX_GPUS} GPUs only powers of two, the deepest and the "
        f"shallowest pipeline and the configured count)"
        if plan.replica_subset
        else ""
    )
    best = plan.candidates[0] if plan.candidates else None
    found = f"; best for {config.objective}: {label(best)}, {_figure(config.objective, best)}"
    return f"{baseline}; layer-wise at {counts} replicas{subset}" + (found if best else "")


def _advice(objective: Objective, layerwise: Layout | None, best: Layout | None) -> str:
    """When an explicit replica count (or a forced split) is not the best one priced, how to
    get the best."""
    if layerwise is None or best is None or best is layerwise:
        return ""
    if layerwise.forced_split is not None and best.forced_split is None:
        return (
            f". layerwise.stage_layers = {shown(layerwise.forced_split)} gives "
            f"{_figure(objective, layerwise)}; the best priced, the {label(best)} (exact "
            f"partition), gives {_figure(objective, best)}: drop layerwise.stage_layers and "
            f'set layerwise.replicas to {best.replicas} or "auto"'
        )
    if best.replicas == layerwise.replicas:
        return ""
    return (
        f". layerwise.replicas = {layerwise.replicas} gives {_figure(objective, layerwise)}; "
        f'set it to {best.replicas} or "auto" for {_figure(objective, best)}'
    )


def _own_baseline(
    inputs: PlanInputs, options: BaselineOptions, baselines: tuple[Layout, ...]
) -> tuple[Layout | None, str]:
    """The config's own TP x PP among the priced baselines, or why it does not fit."""
    for layout in baselines:
        shape = (layout.tensor_parallel, len(layout.stages))
        if shape == (options.tensor_parallel, options.pipeline_parallel):
            return _noted(inputs, layout), ""
    return _try(inputs, lambda: plan_baseline(inputs, options))


def _switch(config: RunConfig, own: Layout | None, top: Layout) -> str:
    """When the best layout searched is not the config's own and the replica advice does not
    already say how to get it: the keys that run it, and what it predicts against the own."""
    same_mode_replicas = top.mode == "layerwise" and config.mode == "layerwise"
    if own is None or same_mode_replicas or label(own) == label(top):
        return ""
    objective = config.objective
    keys = f'mode "{top.mode}", ' + (
        f"baseline.tensor_parallel = {top.tensor_parallel}, baseline.pipeline_parallel = "
        f"{len(top.stages)}"
        if top.mode == "baseline"
        else f"layerwise.replicas = {top.replicas}"
    )
    return (
        f". The config runs the {label(own)}: {_figure(objective, own)}; the best layout "
        f"searched, the {label(top)}, predicts {_figure(objective, top)} ({keys})"
    )


def make_plan(config: RunConfig) -> Plan:
    """Plan both layouts, at every shape the world size can run (planner/candidates.py). The
    config's own mode must fit: otherwise ConfigError with the numbers. What pricing reads of
    the config is taken once (plan_inputs) and handed down."""
    inputs = plan_inputs(config)
    baselines, skipped = baseline_options(inputs, config.baseline)
    baseline, baseline_error = _own_baseline(inputs, config.baseline, baselines)
    options, failure = layerwise_options(inputs, config.layerwise)
    if failure is not None:
        skipped += (f"layer-wise (deepest pipeline searched): {failure}",)
    best = _noted(inputs, best_for(config.objective, options)) if options else None
    layerwise, layerwise_error = _configured(
        inputs, config.layerwise, options, best, str(failure or "")
    )
    own_error = baseline_error if config.mode == "baseline" else layerwise_error
    if own_error:
        problem = f"mode {config.mode!r}: the model does not fit HBM: {own_error}"
        raise ConfigError([problem, *overflow_problems(config)], config.source)
    ranked = tuple(_timed(inputs, lay) for lay in rank(config.objective, [*baselines, *options]))
    best_baseline = next((lay for lay in ranked if lay.mode == "baseline"), None)
    best_baseline = baseline if best_baseline is None else _noted(inputs, best_baseline)
    recommended, reason = _recommend(config.objective, best_baseline, best)
    own = baseline if config.mode == "baseline" else layerwise
    switch = _switch(config, own, ranked[0]) if ranked else ""
    _, subset = searched_counts(inputs.model, inputs.gpus, inputs.workload, config.layerwise)
    plan = Plan(
        config=config,
        baseline=baseline,
        baseline_error=baseline_error,
        layerwise=layerwise,
        layerwise_error=layerwise_error,
        roofline_tps=roofline_tps(inputs),
        recommended=recommended,
        reason=reason + _advice(config.objective, layerwise, best) + switch,
        replica_options=tuple((lay.replicas, lay.tps, lay.tpot_s) for lay in options),
        best_layerwise=best,
        replica_subset=subset,
        candidates=ranked,
        skipped=skipped,
    )
    return replace(plan, compared=compared_text(plan))
