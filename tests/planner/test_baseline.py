"""Megatron's TP x PP layout: the even split, and the uneven first/last split megatron-core
accepts."""

import pytest

from layerwise.config.load import load_config, parse_config
from layerwise.partition.search import stage_costs
from layerwise.planner.inputs import plan_inputs
from layerwise.planner.plan import make_plan
from layerwise.planner.setting import problem
from tests.conftest import CONFIGS
from tests.planner.plans import llama_data


def test_baseline_is_megatrons_even_split():
    config = load_config(CONFIGS / "seed_gpt_baseline.json")
    stages = make_plan(config).baseline.stages
    assert [(s.first_layer, s.stop_layer) for s in stages] == [(0, 8), (8, 16)]
    assert [s.ranks for s in stages] == [tuple(range(8)), tuple(range(8, 16))]


def test_uneven_megatron_baseline_for_llama_405b():
    """126 blocks on TP 1 x PP 8: megatron-core's first/last keys, equal middle stages, and the
    smallest slowest stage among every split it accepts."""
    from layerwise.planner.baseline import baseline_setting
    from layerwise.planner.splits import block_counts, pipeline_boundaries, uneven_counts

    config = parse_config(llama_data("llama-3.1-405b", 8, 1, 8))
    layout = make_plan(config).baseline
    bounds = (0, *(stage.stop_layer for stage in layout.stages))
    assert bounds[0] == 0 and bounds[-1] == 126 + 2
    counts = block_counts(config.model, bounds)
    assert sum(counts) == 126 and min(counts) >= 1 and len(set(counts[1:-1])) == 1
    assert layout.stages[0].num_layers == counts[0] + 1  # + embedding
    assert layout.stages[-1].num_layers == counts[-1] + 1  # + LM head
    assert any(
        f"num_layers_in_first_pipeline_stage = {counts[0]}" in note
        and f"num_layers_in_last_pipeline_stage = {counts[-1]}" in note
        for note in layout.notes
    )
    inputs = plan_inputs(config)
    placed = problem(inputs, baseline_setting(inputs, config.baseline), layout.chunk_tokens)
    ours = max(stage_costs(placed, bounds))
    for other in uneven_counts(126, 8, False):
        assert ours <= max(stage_costs(placed, pipeline_boundaries(config.model, other))) * (
            1 + 1e-9
        )


def test_even_split_when_stages_divide_the_blocks():
    config = parse_config(llama_data("llama-3.1-8b", 8, 2, 4))
    stages = make_plan(config).baseline.stages
    # 8 blocks a stage; the embedding (layer 0) joins stage 0, the head (layer 33) stage 3
    assert [(s.first_layer, s.stop_layer) for s in stages] == [(0, 9), (9, 17), (17, 25), (25, 34)]
    assert not any("uneven" in note for note in make_plan(config).baseline.notes)


@pytest.mark.parametrize(
    "model,tp,pp,batch",
    [
        ({"preset": "llama-3.1-8b", "num_layers": 37}, 1, 5, 8),
        ({"preset": "llama-3.1-8b", "num_layers": 31}, 1, 2, 8),
        ({"preset": "seed-dense", "num_layers": 38}, 2, 3, 8),  # whole column/row pairs
        ({"preset": "llama-3.1-405b", "num_layers": 117}, 1, 6, 8),  # memory binds
    ],
)
def test_uneven_split_search_matches_every_split_megatron_accepts(model, tp, pp, batch):
    """The bisection over f per middle count against all of splits.uneven_counts: the same
    slowest stage among those that fit, and the same distance from the even split."""
    from layerwise.partition.search import fits_capacity
    from layerwise.planner.baseline import baseline_boundaries, baseline_setting
    from layerwise.planner.splits import block_counts, pipeline_boundaries, uneven_counts

    data = llama_data("llama-3.1-8b", tp * pp, tp, pp)
    data["model"], data["workload"] = model, {"batch_size": batch, "seq_len": 8192}
    config = parse_config(data)
    inputs = plan_inputs(config)
    placed = problem(inputs, baseline_setting(inputs, config.baseline), 8192)
    blocks, pairs = config.model.num_layers, config.model.kind == "dense"
    every = [pipeline_boundaries(config.model, c) for c in uneven_counts(blocks, pp, pairs)]
    fit = [bounds for bounds in every if fits_capacity(placed, bounds)]
    assert fit and (len(fit) < len(every) or model["num_layers"] != 117)
    slowest = min(max(stage_costs(placed, bounds)) for bounds in fit)

    def distance(bounds):
        return sum(abs(c - blocks / pp) for c in block_counts(config.model, bounds))

    ties = [b for b in fit if max(stage_costs(placed, b)) <= slowest * (1 + 1e-9)]
    ours = baseline_boundaries(config.model, tp, placed)
    assert fits_capacity(placed, ours)
    assert max(stage_costs(placed, ours)) <= slowest * (1 + 1e-9)
    assert distance(ours) == pytest.approx(min(distance(b) for b in ties))
