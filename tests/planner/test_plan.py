"""Plans: a hand-computed case end to end, invariants, and the published shape on the seed."""

import copy
import json
import textwrap
from dataclasses import replace

import pytest
import yaml

from layerwise.config.load import load_config, parse_config
from layerwise.partition.search import stage_costs, uniform_boundaries
from layerwise.planner.layouts import best_of, layerwise_setting, plan_layerwise, problem
from layerwise.planner.plan import make_plan
from layerwise.report.text import render
from tests.conftest import CONFIGS, PROFILES

ROUND_NUMBERS = textwrap.dedent("""\
    name: round
    description: round numbers for hand-computed plans
    peak_tflops: 1.0
    gemm_tflops: {"1000x1000": {1: 1.0}}
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
        "baseline TP2 x PP2; layer-wise at 1, 2, 4 replicas; best for throughput: "
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


def test_baseline_is_megatrons_even_split():
    config = load_config(CONFIGS / "seed_gpt_baseline.json")
    stages = make_plan(config).baseline.stages
    assert [(s.first_layer, s.stop_layer) for s in stages] == [(0, 8), (8, 16)]
    assert [s.ranks for s in stages] == [tuple(range(8)), tuple(range(8, 16))]


def test_layerwise_never_worse_than_an_even_split(seed_data):
    from layerwise.planner.layouts import layerwise_setting, problem

    seed_data["layerwise"]["replicas"] = 1  # one pipeline of 16 stages
    config = parse_config(seed_data)
    layout = make_plan(config).layerwise
    placed = problem(config, layerwise_setting(config, layout.replicas), layout.chunk_tokens)
    even = max(stage_costs(placed, uniform_boundaries(16, len(layout.stages))))
    assert max(s.prefill_s for s in layout.stages) <= even


def test_one_nvlink_domain_removes_the_slow_hop(seed_data):
    seed_data["layerwise"]["replicas"] = 1
    two_nodes = make_plan(parse_config(seed_data)).layerwise
    seed_data["hardware"]["gpus_per_node"] = 16
    one_domain = make_plan(parse_config(seed_data)).layerwise
    assert one_domain.tps > two_nodes.tps
    assert all(stage.num_layers == 1 for stage in one_domain.stages)


def _with_l2(seed_data, tmp_path, l2_gbs: float) -> dict:
    """The seed config on the h200 profile with `l2_gbs` (0: not measured, not priced) and
    1 us kernel floors (as CUDA graphs measure them), so an 8 MiB weight's read shows."""
    profile = yaml.safe_load((PROFILES / "h200.yaml").read_text())
    profile.update(l2_gbs=l2_gbs, gemm_floor_us=1.0, kernel_floor_us=1.0)
    (tmp_path / "l2.yaml").write_text(yaml.safe_dump(profile))
    seed_data["hardware"]["profile"] = str(tmp_path / "l2.yaml")
    seed_data["model"] = {"kind": "dense", "num_layers": 16, "hidden": 2048}  # 8 MiB a layer
    seed_data["layerwise"]["replicas"] = 1  # a layer per stage
    return seed_data


def test_weights_that_fit_l2_are_read_from_l2_when_the_profile_measured_it(seed_data, tmp_path):
    config = parse_config(_with_l2(seed_data, tmp_path, 7500.0))
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
    plan = make_plan(parse_config(_with_l2(seed_data, tmp_path, 0.0)))
    layout = plan.layerwise
    assert any(stage.weights_fit_l2 for stage in layout.stages)
    assert layout.tpot_s == layout.tpot_without_l2_s
    assert "L2 not priced" in render(plan)


def test_plans_are_deterministic():
    config = load_config(CONFIGS / "seed_gpt_layerwise.json")
    assert make_plan(config) == make_plan(config)


def test_replica_options_price_the_same_layout_per_replica_count():
    config = load_config(CONFIGS / "seed_dense_layerwise.json")
    plan = make_plan(config)
    options = {replicas: (tps, tpot) for replicas, tps, tpot in plan.replica_options}
    assert sorted(options) == [1, 2, 4, 8, 16]
    for replicas, figures in options.items():
        layout = plan_layerwise(config, replicas)
        assert figures == (layout.tps, layout.tpot_s)
    assert options[plan.layerwise.replicas] == (plan.layerwise.tps, plan.layerwise.tpot_s)


@pytest.mark.parametrize("objective", ["throughput", "latency"])
def test_auto_replicas_is_the_best_for_the_objective(seed_data, objective):
    seed_data["objective"] = objective
    config = parse_config(seed_data)
    plan = make_plan(config)
    assert plan.layerwise == plan.best_layerwise
    assert plan_layerwise(config).replicas == plan.layerwise.replicas
    figure = (lambda tps, tpot: -tps) if objective == "throughput" else (lambda tps, tpot: tpot)
    best = min(figure(tps, tpot) for _, tps, tpot in plan.replica_options)
    chosen = figure(plan.layerwise.tps, plan.layerwise.tpot_s)
    assert chosen <= best + abs(best) * 0.01


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


def test_best_for_breaks_ties_by_the_other_figure_then_the_deepest_pipeline(round_plan):
    from dataclasses import replace

    from layerwise.planner.layouts import best_for

    base = round_plan.layerwise  # 4 stages
    deep = replace(base, tps=100.0, tpot_s=1.0)
    shallow = replace(base, stages=base.stages[:1], tps=100.5, tpot_s=1.005)
    fast = replace(base, stages=base.stages[:2], tps=100.9, tpot_s=2.0)
    assert best_for("throughput", [shallow, fast, deep]) is deep  # TPS and TPOT tie: deepest
    assert best_for("throughput", [shallow, fast]) is shallow  # TPS ties: the lower TPOT
    assert best_for("throughput", [deep, replace(fast, tps=102.0)]).tps == 102.0
    assert best_for("latency", [fast, shallow, deep]) is deep  # TPOT and TPS tie: deepest
    assert best_for("latency", [replace(deep, tpot_s=1.0051, tps=99.0), shallow]) is shallow


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


def llama_data(model: str, gpus: int, tp: int, pp: int, profile: str = "h200") -> dict:
    return {
        "mode": "baseline",
        "model": model,
        "hardware": {"profile": profile, "gpus": gpus},
        "workload": {"batch_size": 8, "seq_len": 1024, "decode_steps": 16},
        "baseline": {"tensor_parallel": tp, "pipeline_parallel": pp},
        "layerwise": {"replicas": 1},
    }


def test_partition_problem_sizes_of_embedding_blocks_and_head():
    """Llama 3.1 8B under TP 2 x PP 4, one 1,024-token sequence per chunk, bf16."""
    from layerwise.planner.baseline import baseline_setting

    config = parse_config(llama_data("llama-3.1-8b", 8, 2, 4))
    placed = problem(config, baseline_setting(config), 1024)
    assert len(placed.layer_costs) == 32 + 2
    sizes = placed.boundary_bytes
    assert sizes[0] == 1024 * 8  # int64 token ids into the embedding
    assert set(sizes[1:-1]) == {1024 * 4096 * 2}  # hidden states between layers
    assert sizes[-1] == 1 * 128256 * 2  # last-position logits out of the head, one sequence
    resident = placed.resident_bytes
    assert resident[0] == 128256 * 4096 / 2 * 2  # vocab-parallel embedding: half the rows
    assert resident[-1] == (128256 * 4096 + 4096) / 2 * 2  # final norm + column-parallel head
    cached = 8 * (1024 + 16)  # the batch's prompt and decode tokens
    kv = 2 * 8 * 128 / 2 * 2  # K and V of 8 heads of 128, half on each TP rank, bf16
    assert set(resident[1:-1]) == {218_112_000 / 2 * 2 + kv * cached}


def test_first_stage_holds_token_ids_and_last_stage_logits():
    """Stage room = HBM - 2 in-flight x (input + output) - workspace - the batch held. Against
    a middle stage, stage 0 receives 8-byte token ids instead of hidden states and holds the
    batch's ids; the last stage sends each sequence's last-position logits, keeps the batch's
    (8 sequences), and its workspace is the head's (normed input + logits shard, priced for
    every token: an upper bound) instead of a block's."""
    from layerwise.planner.baseline import baseline_setting

    config = parse_config(llama_data("llama-3.1-8b", 8, 2, 4))
    room = problem(config, baseline_setting(config), 1024).capacity_bytes
    m, h, v, b = 1024, 4096, 128256, 2
    assert room[1] == room[2]
    assert room[1] - room[0] == pytest.approx(8 * 1024 * 8 + 2 * (m * 8 - m * h * b))
    block_work = m * (2 * 2048 + 2 * 512 + 3 * 7168 + h) * b  # QKV, attention out, MLP, hidden
    head_work = m * (h + v // 2) * b
    last = 8 * v * b + 2 * (1 * v * b - m * h * b) + head_work - block_work  # last-token logits
    assert room[1] - room[-1] == pytest.approx(last)


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
    placed = problem(config, baseline_setting(config), layout.chunk_tokens)
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
    placed = problem(config, baseline_setting(config), 8192)
    blocks, pairs = config.model.num_layers, config.model.kind == "dense"
    every = [pipeline_boundaries(config.model, c) for c in uneven_counts(blocks, pp, pairs)]
    fit = [bounds for bounds in every if fits_capacity(placed, bounds)]
    assert fit and (len(fit) < len(every) or model["num_layers"] != 117)
    slowest = min(max(stage_costs(placed, bounds)) for bounds in fit)

    def distance(bounds):
        return sum(abs(c - blocks / pp) for c in block_counts(config.model, bounds))

    ties = [b for b in fit if max(stage_costs(placed, b)) <= slowest * (1 + 1e-9)]
    ours = baseline_boundaries(config, placed)
    assert fits_capacity(placed, ours)
    assert max(stage_costs(placed, ours)) <= slowest * (1 + 1e-9)
    assert distance(ours) == pytest.approx(min(distance(b) for b in ties))


def _mock_plan(
    tmp_path, stem: str, replicas: int = 1, decode_micro_batches="auto", **profile_changes
):
    """A shipped mock config (with `replicas`, `decode_micro_batches`) planned on cpu-mock with
    `profile_changes`."""
    profile = yaml.safe_load((PROFILES / "cpu-mock.yaml").read_text())
    profile.update(profile_changes)
    path = tmp_path / f"profile{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(profile))
    data = json.loads((CONFIGS / f"{stem}.json").read_text())
    data["hardware"]["profile"] = str(path)
    data["layerwise"].update(replicas=replicas, decode_micro_batches=decode_micro_batches)
    config = parse_config(data, stem, CONFIGS)
    return getattr(make_plan(config), config.mode)


def test_engine_costs_add_per_run_and_per_micro_batch_on_every_stage(tmp_path):
    """mock-dense on 4 layer-wise stages, M micro-batches: DeepSpeed's engine adds its run cost
    once and its micro-batch cost to each of the M + 3 pipeline steps."""
    engine = {"layerwise": {"run": 1000.0, "micro_batch": 100.0}}
    bare = _mock_plan(tmp_path, "mock_dense_layerwise", shared_cores=0.0, schedule_us={})
    costed = _mock_plan(tmp_path, "mock_dense_layerwise", shared_cores=0.0, schedule_us=engine)
    assert costed.micro_batches == bare.micro_batches
    steps = costed.micro_batches + len(costed.stages) - 1
    assert costed.prefill_s - bare.prefill_s == pytest.approx(1e-3 + steps * 1e-4)
    assert costed.tpot_s > bare.tpot_s
    baseline_only = {"baseline": {"run": 1000.0, "micro_batch": 100.0}}
    other = _mock_plan(
        tmp_path, "mock_dense_layerwise", shared_cores=0.0, schedule_us=baseline_only
    )
    assert other.prefill_s == bare.prefill_s


def test_replicas_on_shared_cores_are_bounded_by_the_cores(tmp_path):
    """Four 1-stage replicas on one shared core take four times as long as on four devices."""
    apart = _mock_plan(tmp_path, "mock_gpt_layerwise", 4, shared_cores=0.0, schedule_us={})
    shared = _mock_plan(tmp_path, "mock_gpt_layerwise", 4, shared_cores=1.0, schedule_us={})
    assert apart.replicas == shared.replicas == 4
    assert shared.prefill_s == pytest.approx(4 * apart.prefill_s)
    assert shared.tpot_s == pytest.approx(4 * apart.tpot_s)


def test_the_plan_says_when_the_profile_lacks_this_models_host_time(tmp_path):
    only_dense = {"dense": 30.0}
    notes = _mock_plan(tmp_path, "mock_llama_layerwise", layer_host_us=only_dense).notes
    assert any("no host time per call of embedding, head, llama layers" in n for n in notes)
    full = _mock_plan(tmp_path, "mock_llama_layerwise").notes  # the shipped profile has them
    assert not any("no host time" in note for note in full)


def test_engine_cost_per_micro_batch_steers_the_chunk_choice(tmp_path):
    """Without host or engine costs mock-gpt streams 2 chunks through 4 stages; a 10 ms engine
    cost per micro-batch makes one chunk faster, and the chunk search must see it."""
    free = {"shared_cores": 0.0, "layer_host_us": {}, "kernel_fixed_us": 0.0}
    bare = _mock_plan(tmp_path, "mock_gpt_layerwise", schedule_us={}, **free)
    costly = {"layerwise": {"run": 0.0, "micro_batch": 1e4}}
    costed = _mock_plan(tmp_path, "mock_gpt_layerwise", schedule_us=costly, **free)
    assert bare.micro_batches > 1 and costed.micro_batches == 1


def test_engine_run_cost_is_paid_once_per_decode_run(tmp_path):
    """mock-dense on 4 stages, 4 decode steps: a 1 ms run cost adds 1 ms to every step when each
    step is its own run (1 micro-batch), 1/4 ms when all steps stream as one run (4)."""
    run_cost = {"layerwise": {"run": 1000.0, "micro_batch": 0.0}}
    for count, streamed, added in ((1, False, 1e-3), (4, True, 0.25e-3)):
        fixed = {"decode_micro_batches": count, "shared_cores": 0.0}
        bare = _mock_plan(tmp_path, "mock_dense_layerwise", schedule_us={}, **fixed)
        costed = _mock_plan(tmp_path, "mock_dense_layerwise", schedule_us=run_cost, **fixed)
        assert bare.decode_streamed is costed.decode_streamed is streamed
        assert costed.tpot_s - bare.tpot_s == pytest.approx(added)


def test_near_tied_chunks_prefer_l2_only_where_l2_was_measured(seed_data, tmp_path):
    """Two layouts within 1% of each other's tokens/s: the one whose tiles fit L2 wins only on
    a profile that prices L2, otherwise the lower TPOT does."""
    for l2_gbs, expected in ((7500.0, "fits"), (0.0, "faster decode")):
        config = parse_config(_with_l2(copy.deepcopy(seed_data), tmp_path, l2_gbs))
        layout = make_plan(config).layerwise
        fits = replace(layout, tps=99.5, tpot_s=2.0, chunk_fits_l2=True)
        faster = replace(layout, tps=100.0, tpot_s=1.0, chunk_fits_l2=False)
        chosen = best_of(config, [faster, fits])
        assert chosen is {"fits": fits, "faster decode": faster}[expected]
