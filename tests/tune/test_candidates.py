"""tune/candidates.py on the mock configs: which layouts become candidates, their configs (each
parses and plans with the intended mode and sizes), their predicted figures and their order."""

import json

import pytest

from layerwise import make_plan
from layerwise.config.load import parse_config
from layerwise.errors import ConfigError
from layerwise.tune.candidates import (
    candidate_config,
    candidate_name,
    candidates,
    ranked_candidates,
)
from tests.conftest import CONFIGS, PROFILES


def mock(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def planned_layout(config_data: dict):
    config = parse_config(config_data, "candidate", CONFIGS)
    return config, make_plan(config).layout(config.mode)


def test_mock_dense_gives_layerwise_at_1_2_4_replicas_and_the_baseline_at_every_shape():
    found = candidates(mock("mock_dense_layerwise"), CONFIGS, "throughput")
    assert sorted(c.name for c in found) == [
        "baseline TP1xPP4",
        "baseline TP2xPP2",
        "baseline TP4xPP1",
        "layerwise 1x4",
        "layerwise 2x2",
        "layerwise 4x1",
    ]
    for candidate in found:
        config, layout = planned_layout(candidate.config_data)
        mode, sizes = candidate.name.split(" ")
        assert config.mode == layout.mode == mode
        if mode == "layerwise":
            replicas, stages = map(int, sizes.split("x"))
            assert config.layerwise.replicas == layout.replicas == replicas
            assert len(layout.stages) == stages
        else:
            tp, pp = map(int, sizes.removeprefix("TP").split("xPP"))
            assert (config.baseline.tensor_parallel, config.baseline.pipeline_parallel) == (tp, pp)
            assert (layout.tensor_parallel, len(layout.stages)) == (tp, pp)
        assert candidate.predicted["tps"] == pytest.approx(layout.tps)
        assert candidate.predicted["tpot_ms"] == pytest.approx(layout.tpot_s * 1e3)
        assert candidate.predicted["decode_tps"] == pytest.approx(8 / layout.tpot_s)


@pytest.mark.parametrize("objective", ["throughput", "latency"])
def test_candidates_come_in_the_plans_order_with_the_plans_figures(objective):
    """The first candidate is the layout the plan recommends, and each one's own config
    predicts what the plan priced for it."""
    data = {**mock("mock_gpt_layerwise"), "objective": objective}
    plan = make_plan(parse_config(data, "x", CONFIGS))
    found = candidates(data, CONFIGS, objective)
    assert len(found) == len(plan.candidates) > 4
    for candidate, layout in zip(found, plan.candidates):
        assert candidate.name == candidate_name(layout)
        assert candidate.predicted["tps"] == pytest.approx(layout.tps, rel=1e-12)
        assert candidate.predicted["tpot_ms"] == pytest.approx(layout.tpot_s * 1e3, rel=1e-12)
    key = "tps" if objective == "throughput" else "tpot_ms"
    figures = [c.predicted[key] for c in found]
    assert figures == sorted(figures, reverse=objective == "throughput")
    assert all(c.config_data["objective"] == objective for c in found)


def test_the_objective_given_reorders_the_candidates():
    data = mock("mock_dense_layerwise")  # objective: throughput
    by_tps = [c.name for c in candidates(data, CONFIGS, "throughput")]
    by_tpot = [c.name for c in candidates(data, CONFIGS, "latency")]
    assert by_tps[0] == "baseline TP1xPP4" and by_tpot[0] == "layerwise 4x1"


def test_the_replica_counts_are_the_plans():
    data = mock("mock_llama_layerwise")
    plan = make_plan(parse_config(data, "x", CONFIGS))
    found = candidates(data, CONFIGS, "throughput")
    replicas = sorted(
        c.config_data["layerwise"]["replicas"] for c in found if "layerwise" in c.name
    )
    assert replicas == sorted(option[0] for option in plan.replica_options) == [1, 2, 4]
    assert all(c.config_data["mode"] == c.name.split(" ")[0] for c in found)


def test_candidate_config_changes_only_mode_and_the_sizes_given():
    data = mock("mock_dense_layerwise")
    baseline = candidate_config(data, "baseline", tensor_parallel=1, pipeline_parallel=4)
    assert baseline["mode"] == "baseline"
    assert baseline["baseline"] == {
        **data["baseline"],
        "tensor_parallel": 1,
        "pipeline_parallel": 4,
        "micro_batches": "auto",  # the planner's best at a shape the config did not set
        "decode_micro_batches": "auto",
    }
    assert {k: v for k, v in baseline.items() if k not in ("mode", "baseline")} == {
        k: v for k, v in data.items() if k not in ("mode", "baseline")
    }
    config, layout = planned_layout(baseline)
    assert (layout.mode, layout.tensor_parallel, len(layout.stages)) == ("baseline", 1, 4)
    layerwise = candidate_config(data, "layerwise", replicas=2)
    assert layerwise["layerwise"]["replicas"] == 2 and data["layerwise"]["replicas"] == 1
    assert layerwise["baseline"] == data["baseline"]
    assert planned_layout(layerwise)[1].replicas == 2


def test_the_configs_own_baseline_keeps_its_micro_batches():
    data = mock("mock_gpt_baseline")
    data["baseline"]["micro_batches"] = 2
    own = candidate_config(data, "baseline", tensor_parallel=2, pipeline_parallel=2)
    assert own["baseline"] == data["baseline"]
    assert planned_layout(own)[1].micro_batches == 2


def test_a_relative_profile_is_made_absolute_so_the_config_runs_from_anywhere(tmp_path):
    (tmp_path / "mine.yaml").write_text((PROFILES / "cpu-mock.yaml").read_text())
    data = mock("mock_dense_layerwise")
    data["hardware"]["profile"] = "mine.yaml"
    for candidate in candidates(data, tmp_path, "throughput"):
        assert candidate.config_data["hardware"]["profile"] == str(tmp_path / "mine.yaml")
        parse_config(candidate.config_data, "elsewhere")  # found without the folder


def test_a_relative_hf_config_is_made_absolute():
    data = mock("mock_llama_hf")
    found = candidates(data, CONFIGS, "throughput")
    expected = str((CONFIGS / data["model"]["hf_config"]).resolve())
    assert {c.config_data["model"]["hf_config"] for c in found} == {expected}


def test_a_deepspeed_section_fixing_the_batch_refuses_other_replica_counts():
    data = mock("mock_dense_layerwise")
    data["deepspeed"] = {"train_micro_batch_size_per_gpu": 256}  # one replica, one chunk
    found = ranked_candidates(data, CONFIGS, "throughput")
    names = [c.name for c in found.ranked]
    assert "layerwise 1x4" in names and "layerwise 2x2" not in names
    assert "baseline TP2xPP2" in names  # the deepspeed section is the layer-wise runtime's
    refusal = next(line for line in found.refused if line.startswith("layerwise 2x2:"))
    assert "train_micro_batch_size_per_gpu = 256 contradicts the plan's 128" in refusal


def test_a_config_that_does_not_plan_raises():
    data = mock("mock_dense_layerwise")
    data["baseline"]["micro_batches"] = 3
    with pytest.raises(ConfigError, match="baseline.micro_batches = 3 must divide"):
        candidates(data, CONFIGS, "throughput")


def test_a_limit_stops_after_that_many_runnable_candidates():
    data = mock("mock_dense_layerwise")
    every = ranked_candidates(data, CONFIGS, "throughput").ranked
    first = ranked_candidates(data, CONFIGS, "throughput", limit=2).ranked
    assert [c.name for c in first] == [c.name for c in every[:2]] and len(every) == 6


def test_a_forced_split_stays_with_its_own_shape_only():
    data = mock("mock_dense_baseline")
    data["baseline"]["stage_layers"] = [4, 4]  # TP2 x PP2, the config's own shape
    data["layerwise"].update(replicas=1, stage_layers=[2, 2, 2, 2])
    same = candidate_config(data, "baseline", tensor_parallel=2, pipeline_parallel=2)
    assert same["baseline"]["stage_layers"] == [4, 4]
    moved = candidate_config(data, "baseline", tensor_parallel=1, pipeline_parallel=4)
    assert "stage_layers" not in moved["baseline"]
    assert candidate_config(data, "layerwise", replicas=1)["layerwise"]["stage_layers"] == [
        2,
        2,
        2,
        2,
    ]
    assert "stage_layers" not in candidate_config(data, "layerwise", replicas=2)["layerwise"]
    for derived in (moved, candidate_config(data, "layerwise", replicas=2)):
        planned_layout(derived)  # both plan: no split of the wrong length is left behind


def test_the_control_is_the_best_uneven_layerwise_split_run_even():
    """mock-dense: the exact partition of 1 replica x 4 stages is [4, 0, 0, 4] (empty middle
    stages forward activations); the control runs the same layout at [2, 2, 2, 2]."""
    found = ranked_candidates(mock("mock_dense_layerwise"), CONFIGS, "throughput", limit=2)
    control = found.control
    assert control.name == "layerwise 1x4 even"
    assert control.config_data["layerwise"]["stage_layers"] == [2, 2, 2, 2]
    config, layout = planned_layout(control.config_data)
    assert [stage.num_layers for stage in layout.stages] == [2, 2, 2, 2]
    assert layout.forced_split is not None
    exact = make_plan(
        parse_config(
            candidate_config(mock("mock_dense_layerwise"), "layerwise", replicas=1),
            "exact",
            CONFIGS,
        )
    ).layerwise
    assert [stage.num_layers for stage in exact.stages] == [4, 0, 0, 4]
    assert control.predicted["tps"] <= exact.tps  # the exact split is never predicted worse


def test_no_control_when_every_layerwise_split_is_even_already():
    found = ranked_candidates(mock("mock_gpt_layerwise"), CONFIGS, "throughput", limit=2)
    plan = make_plan(parse_config(mock("mock_gpt_layerwise"), "gpt", CONFIGS))
    assert found.control is None
    assert all(
        len({stage.num_layers for stage in layout.stages}) == 1
        for layout in plan.candidates
        if layout.mode == "layerwise"
    )
