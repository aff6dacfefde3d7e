"""Every layout the world size can run, priced: the recommendation's search space.

The baseline at every TP x PP factorisation of the GPUs that megatron-core can build for the
model (TP dividing heads, query groups, MLP width, vocabulary; a stage split megatron accepts),
and the layer-wise layout at every replica count searched (layerwise.layerwise_options), each at
its best chunking and decode micro-batching. A layout that does not fit memory is skipped with
its reason. The model prunes; `launch/tune.py` measures the best few and decides.
"""

from collections.abc import Sequence
from dataclasses import replace

from layerwise.config.checks import pipeline_split_problems, tensor_parallel_problems
from layerwise.config.sections import BaselineOptions, Objective
from layerwise.errors import CapacityError
from layerwise.model.spec import ModelSpec
from layerwise.planner.baseline import plan_baseline
from layerwise.planner.choose import best_for, tpot_cost, tps_cost
from layerwise.planner.inputs import PlanInputs
from layerwise.planner.records import Layout


def tensor_pipeline_pairs(model: ModelSpec, gpus: int) -> list[tuple[int, int]]:
    """(TP, PP) with TP x PP = gpus that megatron-core can build for `model`, TP ascending."""
    pairs = []
    for tp in range(1, gpus + 1):
        if gpus % tp:
            continue
        pp = gpus // tp
        if not tensor_parallel_problems(model, tp) and not pipeline_split_problems(model, tp, pp):
            pairs.append((tp, pp))
    return pairs


def _options_at(configured: BaselineOptions, tp: int, pp: int) -> BaselineOptions:
    """The config's own options at its own TP x PP; elsewhere the planner's best micro-batching
    and split (a count or a split chosen for one pipeline depth need not suit another)."""
    if (tp, pp) == (configured.tensor_parallel, configured.pipeline_parallel):
        return configured
    return replace(
        configured,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        micro_batches="auto",
        decode_micro_batches="auto",
        stage_layers=None,
    )


def baseline_options(
    inputs: PlanInputs, configured: BaselineOptions
) -> tuple[tuple[Layout, ...], tuple[str, ...]]:
    """The baseline at every buildable TP x PP, and a line for each that does not fit."""
    found, skipped = [], []
    for tp, pp in tensor_pipeline_pairs(inputs.model, inputs.gpus):
        try:
            found.append(plan_baseline(inputs, _options_at(configured, tp, pp)))
        except CapacityError as error:
            skipped.append(f"baseline TP{tp} x PP{pp}: {error}")
    return tuple(found), tuple(skipped)


def rank(objective: Objective, layouts: Sequence[Layout]) -> tuple[Layout, ...]:
    """Best first: best_for's pick (its tie rules), then the rest by the objective's figure."""
    if not layouts:
        return ()
    best = best_for(objective, layouts)
    cost = tps_cost if objective == "throughput" else tpot_cost
    rest = sorted((layout for layout in layouts if layout is not best), key=cost)
    return (best, *rest)
