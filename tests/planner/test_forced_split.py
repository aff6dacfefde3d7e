"""A forced split (stage_layers) is planned as given, priced as `price` prices its boundaries,
still chunked at the best size, said so in the notes, and kept off the other shapes searched."""

import dataclasses
import json
from itertools import accumulate

import pytest

from layerwise.config.load import parse_config
from layerwise.config.sections import BaselineOptions
from layerwise.errors import ConfigError
from layerwise.partition.search import partition, stage_costs
from layerwise.planner.baseline import baseline_boundaries, baseline_setting, plan_baseline
from layerwise.planner.choose import best_of
from layerwise.planner.inputs import plan_inputs
from layerwise.planner.layerwise import layerwise_setting, plan_layerwise
from layerwise.planner.plan import make_plan
from layerwise.planner.pricing import price
from layerwise.planner.setting import chunk_candidates, problem
from layerwise.planner.splits import block_counts, pipeline_boundaries
from layerwise.report.plan_json import plan_dict
from tests.conftest import CONFIGS


def config_of(name: str, **sections):
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    for section, values in sections.items():
        data[section].update(values)
    return parse_config(data, "test.json", CONFIGS)


def bare(layout):
    """The layout as `price` builds it: no notes, no forced-split mark, no device-only TPOT."""
    return dataclasses.replace(layout, notes=(), forced_split=None, tpot_device_s=None)


def counts(layout) -> list[int]:
    return [stage.num_layers for stage in layout.stages]


@pytest.mark.parametrize(
    "name,split", [("mock_gpt_layerwise", [3, 0, 4, 1]), ("mock_llama_layerwise", [1, 4, 2, 1])]
)
def test_layerwise_runs_the_forced_split_priced_at_its_boundaries(name, split):
    config = config_of(name, layerwise={"stage_layers": split})
    layout = make_plan(config).layerwise
    assert counts(layout) == split and layout.forced_split == tuple(split)
    inputs = plan_inputs(config)
    setting = layerwise_setting(inputs, 1, "auto")
    boundaries = (0, *accumulate(split))
    assert bare(layout) == price(inputs, setting, layout.chunk_tokens, boundaries)
    # the chunk size is still searched: the best of every chunk at these boundaries
    every = [
        price(inputs, setting, c, boundaries) for c in chunk_candidates(inputs, setting, "auto")
    ]
    assert len(every) > 1 and bare(layout) == best_of(inputs.gpu, every)


def test_the_forced_split_differs_from_what_the_partitioner_would_place():
    """So the tests above would fail if the split were ignored."""
    config = config_of("mock_gpt_layerwise")
    assert counts(make_plan(config).layerwise) == [2, 2, 2, 2]


def test_auto_replicas_takes_the_count_the_split_fixes_and_other_counts_stay_exact():
    split = {"replicas": "auto", "stage_layers": [5, 1, 1, 1]}
    config = config_of("mock_gpt_layerwise", layerwise=split)
    plan = make_plan(config)
    assert plan.layerwise.replicas == 1 and counts(plan.layerwise) == [5, 1, 1, 1]
    inputs = plan_inputs(config)
    assert plan_layerwise(inputs, config.layerwise, config.objective).forced_split == (5, 1, 1, 1)
    two = plan_layerwise(inputs, config.layerwise, config.objective, replicas=2)
    assert two.forced_split is None and counts(two) == [4, 4]
    by_count = {replicas: tps for replicas, tps, _ in plan.replica_options}
    assert sorted(by_count) == [1, 2, 4] and by_count[1] == plan.layerwise.tps
    # the best priced (exact, 2 replicas) beats the forced split, and the reason says how
    assert plan.best_layerwise.replicas == 2 and plan.best_layerwise.forced_split is None
    assert (
        f"layerwise.stage_layers = [5, 1, 1, 1] gives {plan.layerwise.tps:,.0f} tokens/s; the "
        f"best priced, the layer-wise 2 replicas x 2 stages (exact partition), gives "
        f"{plan.best_layerwise.tps:,.0f} tokens/s: drop layerwise.stage_layers"
    ) in plan.reason


def test_layerwise_note_compares_the_forced_split_with_the_exact_partition():
    config = config_of("mock_gpt_layerwise", layerwise={"stage_layers": [3, 1, 3, 1]})
    layout = make_plan(config).layerwise
    inputs = plan_inputs(config)
    placed = problem(inputs, layerwise_setting(inputs, 1, "auto"), layout.chunk_tokens)
    exact = partition(placed)
    forced = max(stage_costs(placed, (0, 3, 4, 7, 8)))
    assert forced > exact.bottleneck
    assert (
        f"layers per stage forced by layerwise.stage_layers = [3, 1, 3, 1]; the exact "
        f"partition would be [2, 2, 2, 2] at {exact.bottleneck * 1e3:.3f} ms per chunk vs "
        f"{forced * 1e3:.3f} ms"
    ) in layout.notes
    assert not any("exact min-bottleneck partition:" in note for note in layout.notes)


@pytest.mark.parametrize(
    "name,tp,pp,split,layers",
    [
        ("mock_gpt_baseline", 1, 4, [1, 3, 3, 1], [1, 3, 3, 1]),
        ("mock_llama_baseline", 2, 2, [2, 4], [3, 5]),  # + embedding, + LM head
        ("mock_dense_baseline", 2, 2, [2, 6], [2, 6]),
    ],
)
def test_baseline_runs_the_forced_blocks_priced_at_their_boundaries(name, tp, pp, split, layers):
    baseline = {"tensor_parallel": tp, "pipeline_parallel": pp, "stage_layers": split}
    config = config_of(name, baseline=baseline)
    layout = make_plan(config).baseline
    assert counts(layout) == layers and layout.forced_split == tuple(split)
    boundaries = pipeline_boundaries(config.model, tuple(split))
    assert block_counts(config.model, boundaries) == tuple(split)
    inputs = plan_inputs(config)
    setting = baseline_setting(inputs, config.baseline)
    assert bare(layout) == price(inputs, setting, layout.chunk_tokens, boundaries)
    every = [
        price(inputs, setting, c, boundaries) for c in chunk_candidates(inputs, setting, "auto")
    ]
    assert bare(layout) == best_of(inputs.gpu, every)


def test_baseline_note_compares_the_forced_split_with_megatrons():
    baseline = {"tensor_parallel": 1, "pipeline_parallel": 4, "stage_layers": [1, 3, 3, 1]}
    config = config_of("mock_gpt_baseline", baseline=baseline)
    layout = make_plan(config).baseline
    inputs = plan_inputs(config)
    placed = problem(inputs, baseline_setting(inputs, config.baseline), layout.chunk_tokens)
    own = baseline_boundaries(config.model, 1, placed)
    assert own == (0, 2, 4, 6, 8)
    assert (
        f"blocks per stage forced by baseline.stage_layers = [1, 3, 3, 1]; the planner's "
        f"megatron split would be [2, 2, 2, 2] at {max(stage_costs(placed, own)) * 1e3:.3f} ms "
        f"per chunk vs {max(stage_costs(placed, (0, 1, 4, 7, 8))) * 1e3:.3f} ms"
    ) in layout.notes
    assert any("num_layers_in_first_pipeline_stage = 1" in note for note in layout.notes)


def test_other_baseline_shapes_searched_drop_the_forced_split():
    baseline = {"tensor_parallel": 1, "pipeline_parallel": 4, "stage_layers": [1, 3, 3, 1]}
    config = config_of("mock_gpt_baseline", baseline=baseline)
    plan = make_plan(config)
    shapes = {
        (lay.tensor_parallel, len(lay.stages)): lay
        for lay in plan.candidates
        if lay.mode == "baseline"
    }
    assert sorted(shapes) == [(1, 4), (2, 2), (4, 1)]
    assert shapes[(1, 4)].forced_split == (1, 3, 3, 1)
    inputs = plan_inputs(config)
    for shape in [(2, 2), (4, 1)]:
        assert shapes[shape].forced_split is None
        options = BaselineOptions(tensor_parallel=shape[0], pipeline_parallel=shape[1])
        assert bare(shapes[shape]) == bare(plan_baseline(inputs, options))


def test_a_forced_split_that_does_not_fit_names_its_stage():
    data = json.loads((CONFIGS / "seed_gpt_layerwise.json").read_text())
    data["layerwise"]["stage_layers"] = [16] + [0] * 15
    with pytest.raises(ConfigError) as error:
        make_plan(parse_config(data, "seed.json", CONFIGS))
    problem_, spread, batch = error.value.problems  # what overflowed, the largest batch
    assert "the layers spread evenly" in spread and "workload.batch_size" in batch
    assert problem_.startswith(
        "mode 'layerwise': the model does not fit HBM: layerwise.stage_layers: stage 0 "
        "(pipeline layers 0-15) does not fit HBM even at a chunk of 10,000 tokens: needs "
    )
    data["mode"] = "baseline"
    data["baseline"]["stage_layers"] = [14, 2]
    with pytest.raises(ConfigError) as error:
        make_plan(parse_config(data, "seed.json", CONFIGS))
    assert "baseline.stage_layers: stage 0 (pipeline layers 0-13) does not fit HBM" in str(
        error.value
    )


def test_the_plan_json_carries_the_forced_split():
    config = config_of("mock_gpt_layerwise", layerwise={"stage_layers": [3, 0, 4, 1]})
    found = plan_dict(make_plan(config))
    assert found["layerwise"]["forced_split"] == [3, 0, 4, 1]
    assert found["baseline"]["forced_split"] is None
