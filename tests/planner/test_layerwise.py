"""The layer-wise layout: the exact placement, the chunk choice and the replica counts searched."""

import json

import pytest

from layerwise.config.load import load_config, parse_config
from layerwise.partition.search import stage_costs, uniform_boundaries
from layerwise.planner.inputs import plan_inputs
from layerwise.planner.layerwise import layerwise_setting, plan_layerwise
from layerwise.planner.plan import make_plan
from layerwise.planner.setting import problem
from tests.conftest import CONFIGS
from tests.planner.plans import mock_plan


def test_layerwise_never_worse_than_an_even_split(seed_data):
    seed_data["layerwise"]["replicas"] = 1  # one pipeline of 16 stages
    config = parse_config(seed_data)
    layout = make_plan(config).layerwise
    inputs = plan_inputs(config)
    setting = layerwise_setting(inputs, layout.replicas, "auto")
    placed = problem(inputs, setting, layout.chunk_tokens)
    even = max(stage_costs(placed, uniform_boundaries(16, len(layout.stages))))
    assert max(s.prefill_s for s in layout.stages) <= even


def test_one_nvlink_domain_removes_the_slow_hop(seed_data):
    seed_data["layerwise"]["replicas"] = 1
    two_nodes = make_plan(parse_config(seed_data)).layerwise
    seed_data["hardware"]["gpus_per_node"] = 16
    one_domain = make_plan(parse_config(seed_data)).layerwise
    assert one_domain.tps > two_nodes.tps
    assert all(stage.num_layers == 1 for stage in one_domain.stages)


def test_replica_options_price_the_same_layout_per_replica_count():
    config = load_config(CONFIGS / "seed_dense_layerwise.json")
    plan = make_plan(config)
    options = {replicas: (tps, tpot) for replicas, tps, tpot in plan.replica_options}
    assert sorted(options) == [1, 2, 4, 8, 16]
    for replicas, figures in options.items():
        layout = plan_layerwise(plan_inputs(config), config.layerwise, config.objective, replicas)
        assert figures == (layout.tps, layout.tpot_s)
    assert options[plan.layerwise.replicas] == (plan.layerwise.tps, plan.layerwise.tpot_s)


@pytest.mark.parametrize("objective", ["throughput", "latency"])
def test_auto_replicas_is_the_best_for_the_objective(seed_data, objective):
    seed_data["objective"] = objective
    config = parse_config(seed_data)
    plan = make_plan(config)
    assert plan.layerwise == plan.best_layerwise
    layout = plan_layerwise(plan_inputs(config), config.layerwise, config.objective)
    assert layout.replicas == plan.layerwise.replicas
    figure = (lambda tps, tpot: -tps) if objective == "throughput" else (lambda tps, tpot: tpot)
    best = min(figure(tps, tpot) for _, tps, tpot in plan.replica_options)
    chosen = figure(plan.layerwise.tps, plan.layerwise.tpot_s)
    assert chosen <= best + abs(best) * 0.01


def test_over_64_gpus_only_a_subset_of_replica_counts_is_priced(seed_data):
    seed_data["hardware"]["gpus"] = seed_data["workload"]["batch_size"] = 96
    seed_data["baseline"] = {"tensor_parallel": 16, "pipeline_parallel": 6}
    plan = make_plan(parse_config(seed_data))
    # valid: 6, 8, 12, 16, 24, 32, 48, 96 (at most 16 stages for the 16 layers)
    assert [replicas for replicas, _, _ in plan.replica_options] == [6, 8, 16, 32, 96]
    assert plan.replica_subset and "over 64 GPUs only powers of two" in plan.compared


def test_replica_options_skip_counts_the_configured_micro_batches_cannot_split():
    data = json.loads((CONFIGS / "mock_gpt_layerwise.json").read_text())
    data["layerwise"]["micro_batches"] = 8  # 8 sequences, 1 per chunk, for one replica only
    plan = make_plan(parse_config(data, "mock", CONFIGS))
    assert plan.layerwise.micro_batches == 8
    assert [replicas for replicas, _, _ in plan.replica_options] == [1]


def test_engine_cost_per_micro_batch_steers_the_chunk_choice(tmp_path):
    """Without host or engine costs mock-gpt streams 2 chunks through 4 stages; a 10 ms engine
    cost per micro-batch makes one chunk faster, and the chunk search must see it."""
    free = {"shared_cores": 0.0, "layer_host_us": {}, "kernel_fixed_us": 0.0}
    bare = mock_plan(tmp_path, "mock_gpt_layerwise", schedule_us={}, **free)
    costly = {"layerwise": {"run": 0.0, "micro_batch": 1e4}}
    costed = mock_plan(tmp_path, "mock_gpt_layerwise", schedule_us=costly, **free)
    assert bare.micro_batches > 1 and costed.micro_batches == 1
