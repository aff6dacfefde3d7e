"""The layouts a tuning runs, each as a complete run config that launch/infer.py runs as is,
with its predicted figures, ranked best first for the objective.

They are the plan's candidates (planner/candidates.py: the baseline at every TP x PP megatron
can build, the layer-wise layout at every replica count searched, those that fit), in the plan's
order for the objective, so the first is the layout the plan recommends. `candidate_config`
derives one candidate's config from (data, mode, sizes), the one place that is done; each
config is then planned as the runtime will plan it, which gives its predicted figures."""

import json
from dataclasses import dataclass, replace
from pathlib import Path

from layerwise.cli.common import plan_for_run
from layerwise.config.load import absolute_paths, parse_config
from layerwise.config.sections import Mode, Objective
from layerwise.errors import ConfigError
from layerwise.partition.search import uniform_boundaries
from layerwise.planner.records import Layout, Plan
from layerwise.report.labels import figures
from layerwise.report.text import describe


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One layout to run: its name, its run config and what the cost model predicts for it."""

    name: str
    """'layerwise 2x2' (replicas x stages) or 'baseline TP1xPP4'."""
    config_data: dict
    """A complete run config (JSON data) that launch/infer.py runs as is: paths absolute."""
    predicted: dict
    """tps, tpot_ms, decode_tps, inv_tps_ms, keyed as in a results JSON."""
    layout: str
    """The layout in one line (report.text.describe)."""


@dataclass(frozen=True, kw_only=True)
class Candidates:
    """The candidates ranked best first for the objective, and those the planner refused."""

    ranked: tuple[Candidate, ...]
    refused: tuple[str, ...] = ()
    control: Candidate | None = None
    """The best layer-wise layout whose exact split is uneven, at an even split (DeepSpeed's
    'uniform' counts): what the exact partition is measured against."""
    """'<mode> <sizes>: <why>' for each derived config that cannot run."""


def with_timed_runs(data: dict, runs: int) -> dict:
    """A copy of a config's data with `runs` timed runs: tune's rounds take the median of many
    runs, where a config's own run.timed_iters (2 in the mock configs) is for a one-off check."""
    out = json.loads(json.dumps(data))
    out.setdefault("run", {})["timed_iters"] = runs
    return out


def candidate_config(
    data: dict,
    mode: Mode,
    *,
    tensor_parallel: int | None = None,
    pipeline_parallel: int | None = None,
    replicas: int | None = None,
    stage_layers: list[int] | None = None,
    objective: Objective | None = None,
) -> dict:
    """A copy of a config's data that runs `mode` at the sizes given (the others as `data` has
    them): the one place a candidate's config is derived. A baseline at another TP x PP than
    the config's takes the planner's best micro-batching ("auto"), as the plan priced it."""
    out = json.loads(json.dumps(data))
    out["mode"] = mode
    if objective is not None:
        out["objective"] = objective
    baseline = out.setdefault("baseline", {})
    shape = {"tensor_parallel": tensor_parallel, "pipeline_parallel": pipeline_parallel}
    moved = {key: value for key, value in shape.items() if value is not None}
    if any(baseline.get(key) != value for key, value in moved.items()):
        baseline.update(moved, micro_batches="auto", decode_micro_batches="auto")
        baseline.pop("stage_layers", None)  # a forced split is for the config's own shape
    layerwise = out.setdefault("layerwise", {})
    if replicas is not None:
        layerwise["replicas"] = replicas
        forced = layerwise.get("stage_layers")
        if forced and len(forced) * replicas != out["hardware"]["gpus"]:
            layerwise.pop("stage_layers")  # the replicas give another stage count
    if stage_layers is not None:
        layerwise["stage_layers"] = list(stage_layers)
    return out


def candidate_name(layout: Layout) -> str:
    if layout.mode == "baseline":
        return f"baseline TP{layout.tensor_parallel}xPP{len(layout.stages)}"
    return f"layerwise {layout.replicas}x{len(layout.stages)}"


def planned(config_data: dict, folder: Path, source: str) -> Candidate:
    """A candidate's config parsed and planned as the runtime will; ConfigError if it cannot
    run."""
    config = parse_config(config_data, source, folder)
    plan = plan_for_run(config)
    layout = plan.layout(config.mode)
    if layout is None:
        error = plan.baseline_error if config.mode == "baseline" else plan.layerwise_error
        raise ConfigError([error], source)
    return Candidate(
        name=candidate_name(layout),
        config_data=config_data,
        predicted=figures(layout.tps, layout.tpot_s * 1e3, config.workload.batch_size),
        layout=describe(layout),
    )


def sizes_of(layout: Layout) -> dict:
    """The keyword sizes of `candidate_config` that run `layout`."""
    if layout.mode == "baseline":
        return {"tensor_parallel": layout.tensor_parallel, "pipeline_parallel": len(layout.stages)}
    return {"replicas": layout.replicas}


def even_counts(layout: Layout) -> list[int]:
    """The layout's layers over its stages in equal counts (DeepSpeed's 'uniform')."""
    bounds = uniform_boundaries(layout.stages[-1].stop_layer, len(layout.stages))
    return [stop - start for start, stop in zip(bounds, bounds[1:])]


def even_control(plan: Plan, data: dict, folder: Path, source: str) -> Candidate | None:
    """The best layer-wise candidate whose exact split is not even, forced to even layer counts
    (layerwise.stage_layers): the control the exact partition is measured against. None when
    every layer-wise split is even already."""
    uneven = (
        layout
        for layout in plan.candidates
        if layout.mode == "layerwise"
        and even_counts(layout) != [stage.num_layers for stage in layout.stages]
    )
    best = next(uneven, None)
    if best is None:
        return None
    config_data = candidate_config(
        data, "layerwise", replicas=best.replicas, stage_layers=even_counts(best)
    )
    control = planned(config_data, folder, f"{source} (even split)")
    return replace(control, name=f"{control.name} even")


def ranked_candidates(
    data: dict,
    folder: Path,
    objective: Objective,
    *,
    limit: int | None = None,
    source: str = "config",
) -> Candidates:
    """The layouts of the config's plan for `objective` as candidates, in the plan's order (best
    predicted first), up to `limit` runnable ones (each is planned again as its own config, which
    on a big model takes a plan's time); ConfigError, named `source`, if the config itself does
    not plan."""
    data = absolute_paths({**data, "objective": objective}, folder)
    plan = plan_for_run(parse_config(data, source, folder))
    ranked, refused = [], list(plan.skipped)
    for layout in plan.candidates:
        if limit is not None and len(ranked) >= limit:
            break
        config_data = candidate_config(data, layout.mode, **sizes_of(layout))
        what = candidate_name(layout)
        try:
            ranked.append(planned(config_data, folder, what))
        except ConfigError as error:
            refused.append(f"{what}: {'; '.join(error.problems)}")
    try:
        control = even_control(plan, data, folder, source)
    except ConfigError as error:
        control = None
        refused.append(f"even-split control: {'; '.join(error.problems)}")
    return Candidates(ranked=tuple(ranked), refused=tuple(refused), control=control)


def candidates(data: dict, folder: Path, objective: Objective) -> list[Candidate]:
    """The runnable candidates of a config's data (`folder`: where its relative paths start),
    best predicted first for `objective`."""
    return list(ranked_candidates(data, folder, objective).ranked)
