"""Plans: a hand-computed case end to end, invariants, and the published shape on the seed."""

import json
import textwrap

import pytest

from layerwise.config import load_config, parse_config
from layerwise.layouts import layerwise_setting, problem
from layerwise.partition import stage_costs, uniform_boundaries
from layerwise.plan import make_plan

from .conftest import CONFIGS

ROUND_NUMBERS = textwrap.dedent("""\
    name: round
    description: round numbers for hand-computed plans
    peak_tflops: 1.0
    gemm_tflops: {1000: {1: 1.0}}
    gemm_floor_us: 0.0
    kernel_floor_us: 0.0
    attention_tflops: 1.0
    hbm_gbs: 1000.0
    hbm_datasheet_gbs: 1000.0
    hbm_capacity_gib: 1.0
    reserved_gib: 0.0
    l2_mib: 0.0
    l2_gbs: 1000.0
    gpus_per_node: 4
    intra_node: {p2p_latency_us: 0.0, p2p_gbs: 1.0, allreduce_latency_us: 0.0,
                 allreduce_busbw_gbs: 1.0}
    inter_node: {p2p_latency_us: 0.0, p2p_gbs: 1.0, allreduce_latency_us: 0.0,
                 allreduce_busbw_gbs: 1.0}
    """)


@pytest.fixture
def round_plan(tmp_path):
    (tmp_path / "round.yaml").write_text(ROUND_NUMBERS)
    data = {
        "mode": "layerwise",
        "model": {"kind": "dense", "num_layers": 4, "hidden": 1000},
        "hardware": {"profile": "round.yaml", "gpus": 4},
        "workload": {"batch_size": 4, "seq_len": 1000, "decode_steps": 1},
        "baseline": {"tensor_parallel": 2, "pipeline_parallel": 2, "micro_batches": 4},
        "layerwise": {"micro_batches": 4, "replicas": 1},
    }
    (tmp_path / "run.json").write_text(json.dumps(data))
    return make_plan(load_config(tmp_path / "run.json"))


def test_hand_computed_layerwise(round_plan):
    # Per 1,000-token chunk: a layer is 2e9 FLOP at 1 TFLOP/s = 2 ms; a 2 MB hop at 1 GB/s = 2 ms,
    # paid by sender and receiver. Stages 4, 6, 6, 4 ms; 4 chunks: 20 + 3 * 6 = 38 ms.
    layout = round_plan.layerwise
    assert [s.prefill_s for s in layout.stages] == pytest.approx([4e-3, 6e-3, 6e-3, 4e-3])
    assert layout.prefill_s == pytest.approx(38e-3)
    assert layout.tps == pytest.approx(4000 / 38e-3)
    assert layout.bubble_fraction == pytest.approx(1 - 4 * 6 / 38)
    # Decode of 4 sequences. As one micro-batch: a layer is 8e6 FLOP = 8 us, a hop 8 KB = 8 us:
    # stages 16, 24, 24, 16 us = 80 us. As 4 micro-batches of one sequence: a layer is 2 us
    # (2e6 FLOP, or 2 MB of weights at 1 TB/s), a hop 2 us: stages 4, 6, 6, 4 us and
    # 20 + 3 * 6 = 38 us, the fastest split.
    assert layout.decode_micro_batches == 4
    assert layout.tpot_s == pytest.approx(38e-6, rel=1e-3)


def test_hand_computed_baseline(round_plan):
    # TP 2: each GEMM is half (1 ms); the row-parallel layer all-reduces 2 MB over 2 GPUs:
    # 2(n-1)/n = 1, so 2 ms. A stage: 1 + 1 + 2 = 4 ms compute+TP, + 2 ms hop = 6 ms.
    layout = round_plan.baseline
    assert [s.prefill_s for s in layout.stages] == pytest.approx([6e-3, 6e-3])
    assert [s.prefill_comm_s for s in layout.stages] == pytest.approx([4e-3, 4e-3])
    assert layout.tps == pytest.approx(4000 / (12e-3 + 3 * 6e-3))
    # Decode, 4 micro-batches of one sequence: a half GEMM is 1 us, the 2 KB all-reduce 2 us, the
    # hop 2 us: stages of 1 + 1 + 2 + 2 = 6 us, and 12 + 3 * 6 = 30 us.
    assert layout.decode_micro_batches == 4
    assert layout.tpot_s == pytest.approx(30e-6, rel=1e-3)
    assert round_plan.recommended == "baseline"


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
        assert stages[0].first_layer == 0 and stages[-1].stop_layer == config.model.num_layers
        assert all(a.stop_layer == b.first_layer for a, b in zip(stages, stages[1:]))
        assert layout.memory_bytes_per_gpu <= config.gpu.usable_bytes
        tokens_per_replica = config.workload.prefill_tokens // layout.replicas
        assert layout.chunk_tokens * layout.micro_batches == tokens_per_replica
        assert len(stages) * layout.replicas * layout.tensor_parallel == config.hardware.gpus
        assert 0.0 <= layout.bubble_fraction < 1.0


def test_baseline_is_megatrons_even_split():
    config = load_config(CONFIGS / "seed_gpt_baseline.json")
    stages = make_plan(config).baseline.stages
    assert [(s.first_layer, s.stop_layer) for s in stages] == [(0, 8), (8, 16)]
    assert [s.ranks for s in stages] == [tuple(range(8)), tuple(range(8, 16))]


def test_layerwise_never_worse_than_an_even_split():
    from layerwise.layouts import layerwise_setting, problem

    config = load_config(CONFIGS / "seed_dense_layerwise.json")
    layout = make_plan(config).layerwise
    placed = problem(config, layerwise_setting(config, layout.replicas), layout.chunk_tokens)
    even = max(stage_costs(placed, uniform_boundaries(16, len(layout.stages))))
    assert max(s.prefill_s for s in layout.stages) <= even


def test_one_nvlink_domain_removes_the_slow_hop(seed_data):
    two_nodes = make_plan(parse_config(seed_data)).layerwise
    seed_data["hardware"]["gpus_per_node"] = 16
    one_domain = make_plan(parse_config(seed_data)).layerwise
    assert one_domain.tps > two_nodes.tps
    assert all(stage.num_layers == 1 for stage in one_domain.stages)


def test_weights_that_fit_l2_are_read_from_l2(seed_data):
    seed_data["model"] = {"kind": "dense", "num_layers": 16, "hidden": 2048}  # 8 MiB a layer
    plan = make_plan(parse_config(seed_data))
    holding = [stage for stage in plan.layerwise.stages if stage.num_layers]
    assert holding and all(stage.weights_fit_l2 for stage in holding)
    seed_data["layerwise"]["l2_budget_fraction"] = 0.0
    no_l2 = make_plan(parse_config(seed_data))
    assert not any(stage.weights_fit_l2 for stage in no_l2.layerwise.stages)
    assert plan.layerwise.tpot_s <= no_l2.layerwise.tpot_s


def test_plans_are_deterministic():
    config = load_config(CONFIGS / "seed_gpt_layerwise.json")
    assert make_plan(config) == make_plan(config)


def test_replica_options_price_the_same_layout_per_replica_count():
    config = load_config(CONFIGS / "seed_dense_layerwise.json")
    plan = make_plan(config)
    options = {replicas: (tps, tpot) for replicas, tps, tpot in plan.replica_options}
    assert sorted(options) == [1, 2, 4, 8, 16]
    assert options[1] == (plan.layerwise.tps, plan.layerwise.tpot_s)


def test_replica_options_skip_counts_the_configured_micro_batches_cannot_split():
    data = json.loads((CONFIGS / "mock_gpt_layerwise.json").read_text())
    data["layerwise"]["micro_batches"] = 8  # 8 sequences, 1 per chunk, for one replica only
    plan = make_plan(parse_config(data, "mock", CONFIGS))
    assert plan.layerwise.micro_batches == 8
    assert [replicas for replicas, _, _ in plan.replica_options] == [1]


def test_first_and_last_stage_hold_a_batch_of_activations(round_plan):
    """Inputs prepared before the clock on the first stage, outputs kept on the last: 4 x 1,000
    tokens x 1,000 x 2 bytes = 8 MB each, on top of what the middle stages hold."""
    stages = round_plan.layerwise.stages
    middle = stages[1].memory_bytes
    assert stages[2].memory_bytes == middle
    assert stages[0].memory_bytes == pytest.approx(middle + 8e6)
    assert stages[3].memory_bytes == pytest.approx(middle + 8e6)
    config = round_plan.config
    room = problem(config, layerwise_setting(config, 1), 1000).capacity_bytes
    assert room[0] == room[3] == pytest.approx(room[1] - 8e6) and room[1] == room[2]
