"""Pricing a placement: hand-computed prefill and decode, memory per stage, L2, engine and
shared-core costs."""

from dataclasses import replace

import pytest

from layerwise.config.load import parse_config
from layerwise.planner.inputs import plan_inputs
from layerwise.planner.layerwise import layerwise_setting
from layerwise.planner.plan import make_plan
from layerwise.planner.pricing import decode_figures, prefill_figures, price, stage_memory
from layerwise.planner.setting import problem
from layerwise.report.text import render
from tests.planner.plans import mock_plan, with_l2


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


def test_first_and_last_stage_hold_a_batch_of_activations(round_plan):
    """Inputs prepared before the clock on the first stage, outputs kept on the last: 4 x 1,000
    tokens x 1,000 x 2 bytes = 8 MB each, on top of what the middle stages hold."""
    stages = round_plan.layerwise.stages
    middle = stages[1].memory_bytes
    assert stages[2].memory_bytes == middle
    assert stages[0].memory_bytes == pytest.approx(middle + 8e6)
    assert stages[3].memory_bytes == pytest.approx(middle + 8e6)
    inputs = plan_inputs(round_plan.config)
    room = problem(inputs, layerwise_setting(inputs, 1, "auto"), 1000).capacity_bytes
    assert room[0] == room[3] == pytest.approx(room[1] - 8e6) and room[1] == room[2]


def test_weights_that_fit_l2_are_read_from_l2_when_the_profile_measured_it(seed_data, tmp_path):
    config = parse_config(with_l2(seed_data, tmp_path, 7500.0))
    plan = make_plan(config)
    layout = plan.layerwise
    holding = [stage for stage in layout.stages if stage.num_layers]
    assert holding and all(stage.weights_fit_l2 for stage in holding)
    assert layout.tpot_s < layout.tpot_without_l2_s
    saved = 1 - layout.tpot_s / layout.tpot_without_l2_s
    assert f"without L2 ({saved:.1%} saved)" in render(plan)
    seed_data["layerwise"]["l2_budget_fraction"] = 0.0
    no_budget = make_plan(parse_config(seed_data)).layerwise
    assert not any(stage.weights_fit_l2 for stage in no_budget.stages)
    # weights from HBM as tpot_without_l2_s prices them (the decode tiles leave L2 too)
    assert no_budget.tpot_s == pytest.approx(layout.tpot_without_l2_s, rel=0.01)
    assert no_budget.tpot_s > layout.tpot_s


def test_l2_is_not_priced_on_a_profile_without_a_measured_gain(seed_data, tmp_path):
    plan = make_plan(parse_config(with_l2(seed_data, tmp_path, 0.0)))
    layout = plan.layerwise
    assert any(stage.weights_fit_l2 for stage in layout.stages)
    assert layout.tpot_s == layout.tpot_without_l2_s
    assert "L2 not priced" in render(plan)


def test_engine_costs_add_per_run_and_per_micro_batch_on_every_stage(tmp_path):
    """mock-dense on 4 layer-wise stages, M micro-batches: DeepSpeed's engine adds its run cost
    once and its micro-batch cost to each of the M + 3 pipeline steps."""
    engine = {"layerwise": {"run": 1000.0, "micro_batch": 100.0}}
    bare = mock_plan(tmp_path, "mock_dense_layerwise", shared_cores=0.0, schedule_us={})
    costed = mock_plan(tmp_path, "mock_dense_layerwise", shared_cores=0.0, schedule_us=engine)
    assert costed.micro_batches == bare.micro_batches
    steps = costed.micro_batches + len(costed.stages) - 1
    assert costed.prefill_s - bare.prefill_s == pytest.approx(1e-3 + steps * 1e-4)
    assert costed.tpot_s > bare.tpot_s
    baseline_only = {"baseline": {"run": 1000.0, "micro_batch": 100.0}}
    other = mock_plan(tmp_path, "mock_dense_layerwise", shared_cores=0.0, schedule_us=baseline_only)
    assert other.prefill_s == bare.prefill_s


def test_replicas_on_shared_cores_are_bounded_by_the_cores(tmp_path):
    """Four 1-stage replicas on one shared core take four times as long as on four devices."""
    apart = mock_plan(tmp_path, "mock_gpt_layerwise", 4, shared_cores=0.0, schedule_us={})
    shared = mock_plan(tmp_path, "mock_gpt_layerwise", 4, shared_cores=1.0, schedule_us={})
    assert apart.replicas == shared.replicas == 4
    assert shared.prefill_s == pytest.approx(4 * apart.prefill_s)
    assert shared.tpot_s == pytest.approx(4 * apart.tpot_s)


def test_engine_run_cost_on_shared_cores_follows_the_busy_time(tmp_path):
    """Four 1-stage replicas on one shared core: the engine's 5 ms run cost (its barriers, paid
    while ranks wait for each other) comes after the four replicas' compute, not under it; a
    decode step pays a quarter of it (4 steps stream as one run)."""
    run_cost = {"layerwise": {"run": 5000.0, "micro_batch": 0.0}}
    shared = mock_plan(tmp_path, "mock_gpt_layerwise", 4, 1, shared_cores=1.0, schedule_us={})
    costed = mock_plan(tmp_path, "mock_gpt_layerwise", 4, 1, shared_cores=1.0, schedule_us=run_cost)
    assert costed.prefill_s == pytest.approx(shared.prefill_s + 5e-3)
    assert costed.decode_streamed
    assert costed.tpot_s == pytest.approx(shared.tpot_s + 5e-3 / 4)


def test_engine_run_cost_is_paid_once_per_decode_run(tmp_path):
    """mock-dense on 4 stages, 4 decode steps: a 1 ms run cost adds 1 ms to every step when each
    step is its own run (1 micro-batch), 1/4 ms when all steps stream as one run (4)."""
    run_cost = {"layerwise": {"run": 1000.0, "micro_batch": 0.0}}
    for count, streamed, added in ((1, False, 1e-3), (4, True, 0.25e-3)):
        fixed = {"decode_micro_batches": count, "shared_cores": 0.0}
        bare = mock_plan(tmp_path, "mock_dense_layerwise", schedule_us={}, **fixed)
        costed = mock_plan(tmp_path, "mock_dense_layerwise", schedule_us=run_cost, **fixed)
        assert bare.decode_streamed is costed.decode_streamed is streamed
        assert costed.tpot_s - bare.tpot_s == pytest.approx(added)


def test_price_is_the_composition_of_its_parts(round_plan):
    """Re-pricing the plan's placement gives the same layout; its figures are those of the
    stage, prefill, decode and memory functions."""
    inputs, layout = plan_inputs(round_plan.config), round_plan.layerwise
    setting = layerwise_setting(inputs, layout.replicas, "auto")
    boundaries = (0, *(stage.stop_layer for stage in layout.stages))
    priced = price(inputs, setting, layout.chunk_tokens, boundaries)
    assert priced == replace(layout, notes=(), tpot_device_s=None)
    placed = problem(inputs, setting, layout.chunk_tokens)
    memory = stage_memory(inputs, setting, layout.chunk_tokens, boundaries, placed.boundary_bytes)
    assert [stage.memory_bytes for stage in priced.stages] == memory
    assert priced.memory_bytes_per_gpu == max(memory)
    prefill = prefill_figures(
        priced.stages, setting, inputs.workload, inputs.gpu, layout.chunk_tokens
    )
    assert (prefill.prefill_s, prefill.tps, prefill.micro_batches) == (
        priced.prefill_s,
        priced.tps,
        priced.micro_batches,
    )
    decode = decode_figures(inputs, setting, boundaries, placed, [False] * len(priced.stages))
    assert decode.stage_times == tuple(stage.decode_s for stage in priced.stages)
    assert decode.tpot_s == decode.tpot_without_l2_s == priced.tpot_s  # no L2 on this profile


def test_prefill_figures_need_only_the_stages_setting_workload_and_gpu(round_plan):
    """Two stages of 4 and 6 ms, 4 chunks: 10 + 3 x 6 = 28 ms for the batch's 4,000 tokens;
    comm is 2 of the 10 ms a chunk spends on the stages."""
    inputs = plan_inputs(round_plan.config)
    stages = tuple(
        replace(stage, prefill_compute_s=compute, prefill_comm_s=comm)
        for stage, compute, comm in zip(round_plan.layerwise.stages[:2], (4e-3, 4e-3), (0, 2e-3))
    )
    setting = replace(layerwise_setting(inputs, 2, "auto"), sequences=4)
    figures = prefill_figures(stages, setting, inputs.workload, inputs.gpu, 1000)
    assert figures.micro_batches == 4
    assert figures.prefill_s == pytest.approx(28e-3)
    assert figures.tps == pytest.approx(2 * 4000 / 28e-3)
    assert figures.comm_fraction == pytest.approx(0.2)


def test_device_tpot_is_the_tpot_without_this_runtimes_host_time(tmp_path):
    """The same placement (4 replicas of one stage, one decode micro-batch) priced on the
    profile without its layer host times and engine costs gives the device-only TPOT; without
    host time the two figures agree."""
    hosted = mock_plan(tmp_path, "mock_gpt_layerwise", 4, 1)
    bare = mock_plan(tmp_path, "mock_gpt_layerwise", 4, 1, layer_host_us={}, schedule_us={})
    assert hosted.tpot_device_s == pytest.approx(bare.tpot_s)
    assert bare.tpot_device_s == pytest.approx(bare.tpot_s)
    assert hosted.tpot_device_s < 0.5 * hosted.tpot_s  # mock-gpt on CPU: mostly host time


def test_a_host_bound_tpot_is_said_with_the_device_figure_beside_it(tmp_path):
    hosted = mock_plan(tmp_path, "mock_gpt_layerwise", 1, 4)
    said = [note for note in hosted.notes if "is host-bound" in note]
    assert len(said) == 1
    assert f"{hosted.tpot_device_s * 1e3:.3f} ms" in said[0]
    assert "PREDICTED, without this runtime's host time (an engine with CUDA graphs)" in said[0]
    bare = mock_plan(tmp_path, "mock_gpt_layerwise", 1, 4, layer_host_us={}, schedule_us={})
    assert not any("is host-bound" in note for note in bare.notes)
