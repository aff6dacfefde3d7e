"""Plans: the recommendation, invariants of every shipped config, and the published shape on
the seed."""

import json

import pytest

from layerwise.config.load import load_config, parse_config
from layerwise.planner.plan import make_plan
from tests.conftest import CONFIGS


def test_recommendation_compares_the_best_replica_count_not_only_the_configured(round_plan):
    """The configured single pipeline (105,263 tokens/s) loses to the baseline (133,333), but
    4 replicas of one stage each hold every layer and never communicate: 4 x 1,000 tokens in 4
    chunks of 250 through 4 layers of 0.5 ms = 8 ms, the roofline's 500,000 tokens/s."""
    assert round_plan.layerwise.replicas == 1  # the configured count is what the run uses
    best = round_plan.best_layerwise
    assert (best.replicas, len(best.stages)) == (4, 1)
    assert best.tps == pytest.approx(round_plan.roofline_tps)
    assert round_plan.recommended == "layerwise"
    assert 'layerwise.replicas = 1 gives 105,263 tokens/s; set it to 4 or "auto"' in (
        round_plan.reason
    )
    assert round_plan.compared == (
        "baseline at TP x PP 1x4, 2x2, 4x1; layer-wise at 1, 2, 4 replicas; best for "
        "throughput: "
        "layer-wise 4 replicas x 1 stage, 500,000 tokens/s"
    )


@pytest.mark.parametrize("name", ["seed_dense", "seed_gpt"])
def test_seed_plans_have_the_published_shape(name):
    """TP wins latency (TPOT), the layer-wise pipeline wins throughput (FACTS.md)."""
    plan = make_plan(load_config(CONFIGS / f"{name}_layerwise.json"))
    assert plan.layerwise.tps > plan.baseline.tps
    assert plan.baseline.tpot_s < plan.layerwise.tpot_s
    assert plan.recommended == "layerwise"
    assert plan.layerwise.tps < plan.roofline_tps and plan.baseline.tps < plan.roofline_tps


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_layout_invariants(path):
    config = load_config(path)
    plan = make_plan(config)
    for layout in (plan.baseline, plan.layerwise):
        stages = layout.stages
        assert stages[0].first_layer == 0
        assert stages[-1].stop_layer == config.model.pipeline_layers
        assert all(a.stop_layer == b.first_layer for a, b in zip(stages, stages[1:]))
        assert layout.memory_bytes_per_gpu <= config.gpu.usable_bytes
        tokens_per_replica = config.workload.prefill_tokens // layout.replicas
        assert layout.chunk_tokens * layout.micro_batches == tokens_per_replica
        assert len(stages) * layout.replicas * layout.tensor_parallel == config.hardware.gpus
        assert 0.0 <= layout.bubble_fraction < 1.0


def test_plans_are_deterministic():
    config = load_config(CONFIGS / "seed_gpt_layerwise.json")
    assert make_plan(config) == make_plan(config)


def test_seed_recommendation_follows_the_objective(seed_data):
    """The seed: whole-layer replicas win prefill throughput, TP 8 wins TPOT."""
    plan = make_plan(parse_config(seed_data))
    assert plan.recommended == "layerwise" and plan.reason.startswith("layer-wise 16 replicas")
    seed_data["objective"] = "latency"
    plan = make_plan(parse_config(seed_data))
    assert plan.recommended == "baseline"
    assert plan.reason.startswith("baseline TP8 x PP2 is best for latency. The baseline")
    tpot = f"{plan.baseline.tpot_s * 1e3:.3f}"
    assert plan.compared.endswith(f"best for latency: baseline TP8 x PP2, TPOT {tpot} ms")


def test_explicit_replicas_are_honoured_and_the_best_count_advised(seed_data):
    seed_data["layerwise"]["replicas"] = 2
    plan = make_plan(parse_config(seed_data))
    assert plan.layerwise.replicas == 2 and len(plan.layerwise.stages) == 8
    assert plan.layout("layerwise") is plan.layerwise and plan.layerwise.notes
    assert plan.best_layerwise.replicas == 16
    assert "layerwise.replicas = 2 gives " in plan.reason
    assert 'set it to 16 or "auto"' in plan.reason


@pytest.mark.parametrize("mode", ["baseline", "layerwise"])
def test_mock_llama_plans_on_four_cpu_ranks(mode):
    data = json.loads((CONFIGS / "mock_gpt_baseline.json").read_text())
    data["model"], data["mode"] = "mock-llama", mode
    config = parse_config(data)
    plan = make_plan(config)
    for layout in (plan.baseline, plan.layerwise):
        stages = layout.stages
        assert stages[0].first_layer == 0  # the embedding
        assert stages[-1].stop_layer == 6 + 2  # after the head: 6 blocks + embedding + head
        assert all(a.stop_layer == b.first_layer for a, b in zip(stages, stages[1:]))
        assert layout.memory_bytes_per_gpu <= config.gpu.usable_bytes
