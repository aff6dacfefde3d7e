"""The recommendation's search: every layout the world size can run, ranked for the objective."""

import dataclasses

from layerwise.config.load import load_config, parse_config
from layerwise.model.spec import MODEL_PRESETS
from layerwise.planner.candidates import rank, tensor_pipeline_pairs
from layerwise.planner.choose import best_for
from layerwise.planner.plan import make_plan
from layerwise.report.plan_json import plan_dict
from layerwise.report.text import render
from tests.conftest import CONFIGS


def shapes(plan, mode):
    return sorted(
        (layout.tensor_parallel, len(layout.stages), layout.replicas)
        for layout in plan.candidates
        if layout.mode == mode
    )


def test_the_factorisations_of_4_and_16_gpus_that_megatron_can_build():
    gpt = MODEL_PRESETS["seed-gpt"]  # 32 heads, 16 layers
    assert tensor_pipeline_pairs(gpt, 4) == [(1, 4), (2, 2), (4, 1)]
    assert tensor_pipeline_pairs(gpt, 16) == [(1, 16), (2, 8), (4, 4), (8, 2), (16, 1)]


def test_factorisations_refused_by_head_counts_and_layer_counts():
    twelve_heads = dataclasses.replace(MODEL_PRESETS["seed-gpt"], heads=12, num_layers=6)
    # TP 8 and 16 do not divide 12 heads; PP 16 and 8 exceed 6 layers
    assert tensor_pipeline_pairs(twelve_heads, 16) == [(4, 4)]
    assert tensor_pipeline_pairs(twelve_heads, 4) == [(1, 4), (2, 2), (4, 1)]


def test_every_runnable_layout_of_4_ranks_is_a_candidate():
    plan = make_plan(load_config(CONFIGS / "mock_dense_layerwise.json"))
    assert shapes(plan, "baseline") == [(1, 4, 1), (2, 2, 1), (4, 1, 1)]
    assert shapes(plan, "layerwise") == [(1, 1, 4), (1, 2, 2), (1, 4, 1)]
    assert len(plan.candidates) == 6 and plan.skipped == ()


def test_candidates_are_ranked_by_the_objective_with_best_for_first(seed_data):
    for objective in ("throughput", "latency"):
        seed_data["objective"] = objective
        plan = make_plan(parse_config(seed_data))
        assert plan.candidates[0] is best_for(objective, plan.candidates)
        figure = [lay.tps for lay in plan.candidates[1:]]
        if objective == "latency":
            figure = [-lay.tpot_s for lay in plan.candidates[1:]]
        assert figure == sorted(figure, reverse=True)


def test_the_recommendation_can_be_a_tp_x_pp_the_config_does_not_run():
    """mock-dense's config runs TP2 x PP2; TP1 x PP4 predicts more (no all-reduce) and is the
    recommendation, with the keys that run it."""
    plan = make_plan(load_config(CONFIGS / "mock_dense_baseline.json"))
    top = plan.candidates[0]
    assert (top.mode, top.tensor_parallel, len(top.stages)) == ("baseline", 1, 4)
    assert plan.baseline.tensor_parallel == 2  # what infer.py runs is still the config's own
    assert top.tps > plan.baseline.tps
    assert plan.recommended == "baseline"
    assert "baseline.tensor_parallel = 1, baseline.pipeline_parallel = 4" in plan.reason


def test_the_config_own_baseline_is_its_candidate():
    plan = make_plan(load_config(CONFIGS / "mock_gpt_baseline.json"))
    own = [
        lay
        for lay in plan.candidates
        if lay.mode == "baseline" and (lay.tensor_parallel, len(lay.stages)) == (2, 2)
    ]
    assert len(own) == 1 and own[0].tps == plan.baseline.tps


def test_layouts_that_do_not_fit_are_skipped_with_their_reason(seed_data):
    """seed-dense on 16 H100s: TP16 x PP1 holds all 16 layers' 1/16 shards plus a whole
    batch's activations on each GPU, more than 80 GB; every other shape fits."""
    plan = make_plan(parse_config(seed_data))
    assert len(plan.skipped) == 1
    assert plan.skipped[0].startswith("baseline TP16 x PP1: ") and "GiB" in plan.skipped[0]
    assert (16, 1, 1) not in shapes(plan, "baseline")
    assert len(shapes(plan, "baseline")) == 4


def test_json_lists_every_candidate_and_the_recommendation():
    plan = make_plan(load_config(CONFIGS / "mock_dense_layerwise.json"))
    data = plan_dict(plan)
    assert len(data["candidates"]) == 6
    top = data["recommendation"]
    assert top == data["candidates"][0]
    assert (top["mode"], top["tensor_parallel"], top["pipeline_parallel"]) == ("baseline", 1, 4)
    assert top["layers_per_stage"] == [2, 2, 2, 2] and top["replicas"] == 1
    assert top["tps"] == plan.candidates[0].tps


def test_rank_of_nothing_is_nothing():
    assert rank("throughput", []) == ()


def test_the_text_report_ranks_the_candidates_and_names_what_does_not_fit(seed_data):
    plan = make_plan(load_config(CONFIGS / "mock_dense_layerwise.json"))
    lines = render(plan).splitlines()
    head = lines.index("runnable layouts: 6, best first for throughput (all; PREDICTED)")
    first = lines[head + 3].split()
    assert first[:5] == ["1", "baseline", "TP1", "x", "PP4"]
    assert "2/2/2/2" in first and "52,748" in first
    assert lines[head + 8].split()[0] == "6"  # six rows, best first
    seed = make_plan(parse_config(seed_data))
    assert any(
        line.startswith("  does not fit: baseline TP16 x PP1: ")
        for line in render(seed).splitlines()
    )


def test_the_text_report_shows_the_best_ten_of_more():
    plan = make_plan(load_config(CONFIGS / "mock_dense_layerwise.json"))
    doubled = dataclasses.replace(plan, candidates=plan.candidates * 2)
    text = render(doubled)
    assert "runnable layouts: 12, best first for throughput (the best 10; PREDICTED)" in text
    ranks = [line.split()[0] for line in text.splitlines() if line[:4].strip().isdigit()]
    assert ranks[-1] == "10"
