"""Every bad-config class gives one ConfigError naming the field and the numbers."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerwise.cli.common import plan_for_run
from layerwise.config.load import load_config, parse_config
from layerwise.errors import ConfigError
from layerwise.model.spec import MODEL_PRESETS
from layerwise.planner.plan import make_plan
from tests.conftest import CONFIGS, PROFILES, seed_config_data


def problems_of(data) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as error:
        parse_config(data, "test.json")
    return error.value.problems


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_configs_load_and_plan(path):
    config = load_config(path)
    plan = make_plan(config)
    assert plan.layout(config.mode) is not None


def test_seed_configs_differ_only_in_mode():
    dense = [load_config(CONFIGS / f"seed_dense_{m}.json") for m in ("baseline", "layerwise")]
    assert [c.mode for c in dense] == ["baseline", "layerwise"]
    assert dense[0].model == dense[1].model == MODEL_PRESETS["seed-dense"]
    assert dense[0].workload.prefill_tokens == 1_280_000
    assert (dense[0].baseline.tensor_parallel, dense[0].baseline.pipeline_parallel) == (8, 2)


def test_unknown_keys_everywhere_are_all_reported(seed_data):
    seed_data["colour"] = "red"
    seed_data["workload"]["batchsize"] = 3
    seed_data["layerwise"]["l2_budget"] = 0.3
    found = problems_of(seed_data)
    assert any(p.startswith("colour: unknown key") for p in found)
    assert any(p.startswith("workload.batchsize: unknown key") for p in found)
    assert any(p.startswith("layerwise.l2_budget: unknown key") for p in found)
    assert len(found) == 3


@pytest.mark.parametrize(
    "section,key,value,expected",
    [
        (
            "workload",
            "batch_size",
            "128",
            "workload.batch_size: expected an integer or 'max', got '128'",
        ),
        ("workload", "seq_len", 1.5, "workload.seq_len: expected an integer, got 1.5"),
        (
            "workload",
            "batch_size",
            True,
            "workload.batch_size: expected an integer or 'max', got True",
        ),
        ("run", "dtype", "int8", "run.dtype: expected 'bf16' or 'fp16' or 'fp32', got 'int8'"),
        (
            "layerwise",
            "micro_batches",
            "many",
            "layerwise.micro_batches: expected an integer or 'auto', got 'many'",
        ),
        ("hardware", "gpus", 0, "hardware.gpus: must be >= 1, got 0"),
        (
            "layerwise",
            "l2_budget_fraction",
            1.5,
            "layerwise.l2_budget_fraction: must be <= 1.0, got 1.5",
        ),
        ("run", "timed_iters", 0, "run.timed_iters: must be >= 1, got 0"),
    ],
)
def test_wrong_types_and_ranges_name_field_and_value(seed_data, section, key, value, expected):
    seed_data[section][key] = value
    assert expected in problems_of(seed_data)


def test_mode_is_the_switch(seed_data):
    seed_data["mode"] = "tp"
    assert "mode: expected 'baseline' or 'layerwise', got 'tp'" in problems_of(seed_data)


def test_missing_sections(seed_data):
    del seed_data["workload"], seed_data["model"]
    found = problems_of(seed_data)
    assert "workload: missing" in found and "model: missing" in found


def test_tp_times_pp_must_equal_gpus(seed_data):
    seed_data["baseline"]["pipeline_parallel"] = 4
    assert (
        "baseline.tensor_parallel x baseline.pipeline_parallel = 8 x 4 = 32, but hardware.gpus = 16"
    ) in problems_of(seed_data)


def test_more_stages_than_layers(seed_data):
    seed_data["model"] = {"preset": "seed-dense", "num_layers": 1}
    seed_data["baseline"] = {"tensor_parallel": 8, "pipeline_parallel": 2}
    found = problems_of(seed_data)
    assert ("baseline.pipeline_parallel = 2 stages is more than model.num_layers = 1") in found


def test_explicit_replicas_leaving_more_stages_than_layers(seed_data):
    seed_data["layerwise"]["replicas"] = 1
    seed_data["model"] = {"preset": "seed-dense", "num_layers": 8}
    seed_data["baseline"] = {"tensor_parallel": 8, "pipeline_parallel": 2}
    found = problems_of(seed_data)
    assert any("16 / 1 = 16 stages is more than model.num_layers = 8" in p for p in found)


def test_fewer_layers_than_gpus_gets_replicas_by_default(seed_data):
    """16 GPUs, 8 layers: "auto" chooses among 2, 4, 8 and 16 replicas (one replica would need
    16 stages), the best predicted prefill throughput (the default objective)."""
    seed_data["model"] = {"preset": "seed-dense", "num_layers": 8}
    seed_data["baseline"] = {"tensor_parallel": 8, "pipeline_parallel": 2}
    plan = make_plan(parse_config(seed_data))
    assert [replicas for replicas, _, _ in plan.replica_options] == [2, 4, 8, 16]
    layout = plan.layerwise
    assert layout.replicas * len(layout.stages) == 16
    assert layout.tps >= max(tps for _, tps, _ in plan.replica_options) * 0.99


def test_objective_defaults_to_throughput_and_is_checked(seed_data):
    assert parse_config(seed_data).objective == "throughput"
    seed_data["objective"] = "latency"
    assert parse_config(seed_data).objective == "latency"
    seed_data["objective"] = "speed"
    assert "objective: expected 'throughput' or 'latency', got 'speed'" in problems_of(seed_data)


def test_auto_replicas_need_a_count_the_micro_batches_split(seed_data):
    seed_data["layerwise"]["decode_micro_batches"] = 3  # 128 / replicas is never a multiple
    found = problems_of(seed_data)
    assert len(found) == 1
    assert found[0].startswith("layerwise.decode_micro_batches = 3 must divide the 128 sequences")
    assert "layerwise.replicas 'auto': no replica count out of 1, 2, 4, 8, 16" in found[0]
    seed_data["layerwise"]["decode_micro_batches"] = 32  # 128, 64 and 32 sequences split
    plan = make_plan(parse_config(seed_data))
    assert [replicas for replicas, _, _ in plan.replica_options] == [1, 2, 4]
    assert plan.layerwise.replicas == 4 and plan.layerwise.decode_micro_batches == 32


@pytest.mark.parametrize("key", ["micro_batches", "decode_micro_batches", "replicas"])
def test_counts_below_one_are_refused_before_any_division(seed_data, key):
    seed_data["layerwise"][key] = 0
    assert problems_of(seed_data) == (f"layerwise.{key}: must be >= 1, got 0",)


def test_every_problem_is_listed_with_an_unknown_profile(seed_data):
    """A wrong hardware.gpus once hid the unknown profile: 8 problems were reported as 7."""
    seed_data["colour"] = "red"
    seed_data["mode"] = "tp"
    seed_data["objective"] = "speed"
    seed_data["hardware"] = {"profile": "b300", "gpus": 0}
    seed_data["workload"]["batch_size"] = "many"
    seed_data["run"]["seed"] = "x"
    seed_data["baseline"]["tensor_parallel"] = 3
    seed_data["layerwise"]["l2_budget_fraction"] = 2.0
    with pytest.raises(ConfigError) as error:
        parse_config(seed_data, "my.json")
    found = error.value.problems
    expected = (
        "colour: unknown key",
        "mode: expected 'baseline' or 'layerwise', got 'tp'",
        "objective: expected 'throughput' or 'latency', got 'speed'",
        "hardware.gpus: must be >= 1, got 0",
        "hardware.profile: no profile 'b300'",
        "workload.batch_size: expected an integer or 'max', got 'many'",
        "run.seed: expected an integer, got 'x'",
        "baseline.tensor_parallel = 3 does not divide model.hidden = 16384",
        "layerwise.l2_budget_fraction: must be <= 1.0, got 2.0",
    )
    for text in expected:
        assert sum(text in problem for problem in found) == 1, (text, found)
    assert len(found) == len(expected)
    assert str(error.value).startswith(f"my.json: {len(expected)} problems")


def test_cross_checks_run_for_the_sections_without_problems(seed_data):
    seed_data["hardware"]["profile"] = "b300"
    seed_data["workload"]["seq_len"] = "long"
    seed_data["baseline"]["pipeline_parallel"] = 4
    found = problems_of(seed_data)
    assert any(p.startswith("hardware.profile: no profile 'b300'") for p in found)
    assert "workload.seq_len: expected an integer, got 'long'" in found
    assert "8 x 4 = 32, but hardware.gpus = 16" in " ".join(found)


def test_all_problems_in_one_message(seed_data):
    seed_data["mode"] = "both"
    seed_data["baseline"]["tensor_parallel"] = 3
    seed_data["run"]["seed"] = "x"
    with pytest.raises(ConfigError) as error:
        parse_config(seed_data, "my.json")
    message = str(error.value)
    assert message.startswith("my.json: 4 problems")
    for text in (
        "mode:",
        "run.seed:",
        "3 x 2 = 6, but hardware.gpus = 16",
        "baseline.tensor_parallel = 3 does not divide model.hidden = 16384",
    ):
        assert text in message


def test_unknown_presets_and_profiles_list_the_known_ones(seed_data):
    seed_data["model"] = "gpt-5"
    seed_data["hardware"]["profile"] = "b200"
    found = problems_of(seed_data)
    assert any("unknown preset 'gpt-5'" in p and "seed-dense" in p for p in found)
    assert any("no profile 'b200'" in p and "h100-sxm" in p for p in found)


def test_model_preset_with_overrides(seed_data):
    seed_data["model"] = {"preset": "seed-gpt", "num_layers": 32}
    config = parse_config(seed_data)
    assert config.model.num_layers == 32 and config.model.heads == 32
    assert config.model.name == "seed-gpt-custom"


def test_gpt_tp_must_divide_heads(seed_data):
    seed_data["model"] = {"preset": "seed-gpt", "heads": 12}
    assert "baseline.tensor_parallel = 8 does not divide model.heads = 12" in problems_of(seed_data)


def test_micro_batches_must_divide(seed_data):
    seed_data["baseline"]["micro_batches"] = 7
    assert any(
        p.startswith("baseline.micro_batches = 7 must divide the 128 sequences")
        for p in problems_of(seed_data)
    )


def test_decode_micro_batches_must_divide_each_pipelines_sequences(seed_data):
    seed_data["baseline"]["decode_micro_batches"] = 5
    seed_data["layerwise"].update(replicas=2, decode_micro_batches=3)
    problems = problems_of(seed_data)
    assert "baseline.decode_micro_batches = 5 must divide the 128 sequences" in problems[0]
    assert any(
        "layerwise.decode_micro_batches = 3 must divide the 64 sequences" in p for p in problems
    )
    seed_data["baseline"]["decode_micro_batches"] = 8
    seed_data["layerwise"]["decode_micro_batches"] = 16
    plan = make_plan(parse_config(seed_data))
    assert plan.baseline.decode_micro_batches == 8 and plan.layerwise.decode_micro_batches == 16


def test_model_that_does_not_fit_hbm(seed_data):
    seed_data["model"] = {"preset": "seed-dense", "num_layers": 4096}
    for mode in ("baseline", "layerwise"):
        seed_data["mode"] = mode
        with pytest.raises(ConfigError) as error:
            make_plan(parse_config(seed_data))
        assert "does not fit HBM" in str(error.value) and "GiB" in str(error.value)


def test_deepspeed_keys_that_contradict_the_plan(seed_data):
    seed_data["deepspeed"] = {"gradient_accumulation_steps": 3, "steps_per_print": 10}
    with pytest.raises(ConfigError) as error:
        plan_for_run(parse_config(seed_data))
    assert "deepspeed.gradient_accumulation_steps = 3 contradicts the plan's" in str(error.value)


@pytest.mark.parametrize("mode", ["layerwise", "baseline"])
def test_every_deepspeed_key_the_plan_decides_is_checked_in_both_modes(seed_data, mode):
    """The section configures the layer-wise runtime; switching the mode must not hide it."""
    seed_data["mode"] = mode
    layout = plan_for_run(parse_config(seed_data)).layerwise
    seed_data["deepspeed"] = {
        "train_micro_batch_size_per_gpu": layout.micro_batch_rows + 1,
        "gradient_accumulation_steps": layout.micro_batches + 1,
        "train_batch_size": 3,
        "bf16": {"enabled": True},
        "fp16": {"enabled": False},
    }
    with pytest.raises(ConfigError) as error:
        plan_for_run(parse_config(seed_data))
    assert len(error.value.problems) == 4, error.value.problems
    message = str(error.value)
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert f"deepspeed.{key} = " in message
    total = layout.micro_batch_rows * layout.micro_batches * layout.replicas
    assert f"deepspeed.train_batch_size = 3 contradicts the plan's {total}" in message
    assert "deepspeed.bf16.enabled = True contradicts run.dtype = 'bf16'" in message


def test_deepspeed_keys_that_write_files_or_open_connections_are_refused(seed_data):
    seed_data["deepspeed"] = {
        "csv_monitor": {"enabled": True, "output_path": "/tmp/x"},
        "wandb": {"enabled": True},
        "comms_logger": {"enabled": True},
        "zero_optimization": {"stage": 0, "offload_param": {"device": "nvme"}},
        "steps_per_print": 10,
    }
    with pytest.raises(ConfigError) as error:
        plan_for_run(parse_config(seed_data))
    problems = error.value.problems
    assert len(problems) == 4, problems
    for key in ("csv_monitor", "wandb", "comms_logger", "zero_optimization.offload_param"):
        assert any(p.startswith(f"deepspeed.{key}: not allowed") for p in problems), key


def test_deepspeed_keys_that_agree_pass(seed_data):
    plan = plan_for_run(parse_config(seed_data))
    seed_data["deepspeed"] = {"gradient_accumulation_steps": plan.layerwise.micro_batches}
    assert plan_for_run(parse_config(seed_data)).layerwise == plan.layerwise


def test_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"mode": "layerwise",\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "not valid JSON" in str(error.value) and "line 2" in str(error.value)


def test_bad_hardware_profile_file(tmp_path, seed_data):
    profile = tmp_path / "mine.yaml"
    profile.write_text("name: mine\npeak_tflops: fast\n")
    seed_data["hardware"]["profile"] = "mine.yaml"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(seed_data))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "hardware.peak_tflops: expected a number, got 'fast'" in message
    assert "hardware.hbm_gbs: missing" in message


def test_gpus_per_node_override(seed_data):
    seed_data["hardware"]["gpus_per_node"] = 16
    assert parse_config(seed_data).gpu.gpus_per_node == 16


def test_hardware_tables_need_positive_entries_and_shape_keys(tmp_path, seed_data):
    text = (PROFILES / "h200.yaml").read_text()
    profile = tmp_path / "odd.yaml"
    odd = text.replace('"16384x2048": {1024: 708.9', '"16384x2048": {0: 708.9')
    profile.write_text(odd.replace('"2048x16384":', '"2048 by 16384":'))
    seed_data["hardware"]["profile"] = str(profile)
    found = problems_of(seed_data)
    assert any(
        "hardware.gemm_tflops[16384x2048]: needs positive keys and values" in p for p in found
    )
    assert any('shape keys are "KxN"' in p and "'2048 by 16384'" in p for p in found)


def test_preset_of_the_wrong_type(seed_data):
    seed_data["model"] = {"preset": ["seed-gpt"]}
    assert any(
        p.startswith("model.preset: unknown preset ['seed-gpt']") for p in problems_of(seed_data)
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    section=st.sampled_from(
        ["mode", "model", "hardware", "workload", "baseline", "layerwise", "run", "deepspeed"]
    ),
    key=st.sampled_from(
        [
            "preset",
            "gpus",
            "batch_size",
            "seq_len",
            "tensor_parallel",
            "micro_batches",
            "replicas",
            "dtype",
            "num_layers",
            "profile",
            None,
        ]
    ),
    value=json_values,
)
def test_any_json_value_anywhere_gives_a_config_or_a_config_error(section, key, value):
    data = seed_config_data()
    if key is None or not isinstance(data.get(section), dict):
        data[section] = value
    else:
        data[section][key] = value
    try:
        make_plan(parse_config(data))
    except ConfigError as error:
        assert error.problems


def llama_data(model, tp: int, pp: int, gpus: int = 8) -> dict:
    return {
        "mode": "baseline",
        "model": model,
        "hardware": {"profile": "h200", "gpus": gpus},
        "workload": {"batch_size": 8, "seq_len": 1024},
        "baseline": {"tensor_parallel": tp, "pipeline_parallel": pp},
        "layerwise": {"replicas": 1},
    }


def test_tp_must_divide_query_groups_and_vocabulary():
    found = problems_of(llama_data("llama-3.1-8b", 16, 1, gpus=16))
    assert "baseline.tensor_parallel = 16 does not divide model.query_groups = 8" in found
    found = problems_of(llama_data({"preset": "mock-llama", "vocab_size": 97}, 2, 4))
    assert "baseline.tensor_parallel = 2 does not divide model.vocab_size = 97" in found


def test_query_groups_must_divide_heads():
    found = problems_of(llama_data({"preset": "mock-llama", "query_groups": 3}, 1, 8))
    assert any(p.startswith("model.query_groups = 3 must divide model.heads = 8") for p in found)


def test_dense_models_refuse_gpt_only_fields(seed_data):
    seed_data["model"] = {"preset": "seed-dense", "rope": True, "vocab_size": 1000}
    found = problems_of(seed_data)
    assert any(p.startswith("model.rope: a dense model has no rope") for p in found)
    assert any(p.startswith("model.vocab_size: a dense model has no vocab_size") for p in found)
    assert len(found) == 2


def test_uneven_blocks_per_stage_are_allowed(seed_data):
    """Megatron-core splits 15 blocks on 2 stages with its first/last-stage keys."""
    seed_data["model"] = {"preset": "seed-gpt", "num_layers": 15}
    plan = make_plan(parse_config(seed_data))
    assert sorted(stage.num_layers for stage in plan.baseline.stages) in ([7, 8], [6, 9], [5, 10])
    assert sum(stage.num_layers for stage in plan.baseline.stages) == 15


def test_dense_pairs_that_no_split_can_hold_are_refused(seed_data):
    """Under TP every stage needs whole column/row pairs: 15 dense layers cannot be split."""
    seed_data["model"] = {"preset": "seed-dense", "num_layers": 15}
    found = problems_of(seed_data)
    message = next(p for p in found if p.startswith("baseline.pipeline_parallel = 2 cannot split"))
    assert "model.num_layers = 15" in message and "baseline.tensor_parallel = 8" in message
    assert "num_layers_in_first_pipeline_stage" in message


def test_layerwise_stages_may_hold_the_embedding_and_head_alone():
    """mock-llama places 6 blocks + embedding + head = 8 pipeline layers on up to 8 stages."""
    data = llama_data("mock-llama", 2, 4, gpus=8) | {"mode": "layerwise"}
    data["hardware"]["profile"] = "cpu-mock"
    data["workload"] = {"batch_size": 8, "seq_len": 32, "decode_steps": 4}
    plan = make_plan(parse_config(data))
    stages = plan.layerwise.stages
    assert len(stages) == 8 and stages[0].first_layer == 0 and stages[-1].stop_layer == 6 + 2
    data = llama_data("mock-llama", 1, 6, gpus=9)
    data["baseline"] = {"tensor_parallel": 9, "pipeline_parallel": 1}
    found = problems_of(data)
    assert any(
        "9 / 1 = 9 stages is more than the 8 pipeline layers (model.num_layers = 6" in p
        for p in found
    )


def test_split_check_agrees_with_every_megatron_split():
    """The config check's closed form against the enumeration of megatron-core's splits."""
    from layerwise.planner.splits import even_counts, has_split, uneven_counts

    for blocks in range(1, 30):
        for stages in range(1, 10):
            for pairs in (False, True):
                exists = even_counts(blocks, stages, pairs) or uneven_counts(blocks, stages, pairs)
                assert has_split(blocks, stages, pairs) == bool(exists), (blocks, stages, pairs)
