"""A forced split (baseline.stage_layers, layerwise.stage_layers): each wrong one is one problem
naming the field and the numbers, collected with the config's other problems."""

import json

import pytest

from layerwise.config.load import parse_config
from layerwise.config.replicas import configured_replicas
from layerwise.errors import ConfigError
from tests.conftest import CONFIGS


def mock_data(name: str, **sections) -> dict:
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    for section, values in sections.items():
        data[section].update(values)
    return data


def problems_of(data: dict) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as error:
        parse_config(data, "test.json", CONFIGS)
    return error.value.problems


def test_a_valid_forced_split_loads_as_a_tuple():
    config = parse_config(
        mock_data(
            "mock_gpt_layerwise",
            layerwise={"stage_layers": [3, 0, 4, 1]},
            baseline={"tensor_parallel": 1, "pipeline_parallel": 4, "stage_layers": [1, 3, 3, 1]},
        ),
        "test.json",
        CONFIGS,
    )
    assert config.layerwise.stage_layers == (3, 0, 4, 1)
    assert config.baseline.stage_layers == (1, 3, 3, 1)


def test_default_is_no_forced_split():
    config = parse_config(mock_data("mock_gpt_layerwise"), "test.json", CONFIGS)
    assert config.layerwise.stage_layers is None and config.baseline.stage_layers is None


def test_a_list_of_non_integers_is_a_type_error():
    found = problems_of(mock_data("mock_gpt_layerwise", layerwise={"stage_layers": [1, "a"]}))
    assert found == (
        "layerwise.stage_layers: expected a list (an integer each) or null, got [1, 'a']",
    )


def test_layerwise_wrong_sum_names_the_pipeline_layers_and_the_embedding_and_head():
    found = problems_of(mock_data("mock_llama_layerwise", layerwise={"stage_layers": [2, 2, 2, 1]}))
    assert found == (
        "layerwise.stage_layers = [2, 2, 2, 1] sums to 7, but the model has 8 pipeline layers: "
        "model.num_layers = 6 blocks + the token embedding + the LM head (with a vocabulary the "
        "embedding and the LM head count as layers of their own)",
    )


def test_layerwise_wrong_sum_without_a_vocabulary():
    found = problems_of(mock_data("mock_gpt_layerwise", layerwise={"stage_layers": [3, 3, 3, 0]}))
    assert found == (
        "layerwise.stage_layers = [3, 3, 3, 0] sums to 9, but the model has 8 pipeline layers "
        "(model.num_layers)",
    )


def test_layerwise_wrong_length_against_explicit_replicas():
    found = problems_of(mock_data("mock_gpt_layerwise", layerwise={"stage_layers": [5, 3]}))
    assert found == (
        "layerwise.stage_layers = [5, 3] has 2 entries, but hardware.gpus / layerwise.replicas "
        "= 4 / 1 = 4 stages (one entry per stage)",
    )


def test_layerwise_length_must_divide_the_gpus_under_auto_replicas():
    data = mock_data(
        "mock_gpt_layerwise", layerwise={"replicas": "auto", "stage_layers": [5, 2, 1]}
    )
    assert problems_of(data) == (
        "layerwise.stage_layers = [5, 2, 1] has 3 entries (stages), which must divide "
        'hardware.gpus = 4: with layerwise.replicas "auto" the split fixes the stages, replicas '
        "= gpus / stages",
    )


def test_under_auto_the_split_fixes_the_replica_count():
    data = mock_data("mock_gpt_layerwise", layerwise={"replicas": "auto", "stage_layers": [5, 3]})
    config = parse_config(data, "test.json", CONFIGS)
    assert configured_replicas(4, config.layerwise) == 2
    data["layerwise"]["stage_layers"] = None
    assert configured_replicas(4, parse_config(data, "test.json", CONFIGS).layerwise) == "auto"


def test_the_replica_count_a_split_fixes_must_split_the_batch():
    data = mock_data(
        "mock_gpt_layerwise",
        workload={"batch_size": 6},
        layerwise={"replicas": "auto", "stage_layers": [8]},
    )
    assert problems_of(data) == (
        'layerwise.replicas "auto" = hardware.gpus / len(layerwise.stage_layers) = 4 / 1 = 4 '
        "must divide hardware.gpus = 4 and workload.batch_size = 6",
    )


def test_layerwise_negative_entries_refused():
    found = problems_of(mock_data("mock_gpt_layerwise", layerwise={"stage_layers": [5, -1, 3, 1]}))
    assert found == (
        "layerwise.stage_layers = [5, -1, 3, 1]: stage 1 holds -1 pipeline layers; a stage "
        "holds >= 0 (0: an empty stage that forwards activations)",
    )


def test_layerwise_empty_list_refused():
    found = problems_of(mock_data("mock_gpt_layerwise", layerwise={"stage_layers": []}))
    assert found == ("layerwise.stage_layers = []: needs one entry per pipeline stage, got none",)


def baseline_data(model: str, tp: int, pp: int, split: list[int]) -> dict:
    return mock_data(
        f"{model}_baseline",
        baseline={"tensor_parallel": tp, "pipeline_parallel": pp, "stage_layers": split},
    )


def test_baseline_wrong_sum_counts_blocks_not_the_embedding_or_head():
    assert problems_of(baseline_data("mock_llama", 2, 2, [2, 5])) == (
        "baseline.stage_layers = [2, 5] sums to 7 blocks, but model.num_layers = 6 (megatron "
        "counts transformer blocks; the embedding and LM head are not entries: they join the "
        "first and last stage)",
    )


def test_baseline_wrong_length():
    assert problems_of(baseline_data("mock_gpt", 2, 2, [3, 3, 2])) == (
        "baseline.stage_layers = [3, 3, 2] has 3 entries, but baseline.pipeline_parallel = 2 "
        "stages (one entry per stage)",
    )


def test_baseline_empty_stage_refused():
    assert problems_of(baseline_data("mock_gpt", 1, 4, [4, 0, 0, 4])) == (
        "baseline.stage_layers = [4, 0, 0, 4]: stages 1, 2 hold 0, 0 blocks; megatron-core "
        "builds >= 1 transformer block on every pipeline stage",
    )


def test_baseline_unequal_middle_stages_refused_with_megatrons_keys():
    assert problems_of(baseline_data("mock_gpt", 1, 4, [1, 2, 4, 1])) == (
        "baseline.stage_layers = [1, 2, 4, 1]: the middle stages hold 2, 4 blocks; "
        "megatron-core expresses a split only as an even one or by "
        "num_layers_in_first_pipeline_stage / num_layers_in_last_pipeline_stage around equal "
        "middle stages ([first, m, ..., m, last])",
    )


def test_baseline_odd_counts_refused_for_dense_layers_under_tensor_parallelism():
    assert problems_of(baseline_data("mock_dense", 2, 2, [3, 5])) == (
        "baseline.stage_layers = [3, 5]: stages 0, 1 hold 3, 5 blocks, an odd number; dense "
        "layers pair up under tensor parallelism (baseline.tensor_parallel = 2; column- then "
        "row-parallel, as Megatron's MLP), so every stage needs an even count",
    )


def test_odd_counts_are_fine_without_tensor_parallelism_or_for_gpt_blocks():
    parse_config(baseline_data("mock_dense", 1, 4, [1, 3, 3, 1]), "test.json", CONFIGS)
    parse_config(baseline_data("mock_gpt", 2, 2, [3, 5]), "test.json", CONFIGS)


def test_split_problems_are_collected_with_the_others():
    data = baseline_data("mock_gpt", 1, 4, [1, 2, 4, 0])
    data["layerwise"]["stage_layers"] = [9]
    data["workload"]["batch_size"] = 0
    found = problems_of(data)
    assert "workload.batch_size: must be >= 1, got 0" in found
    assert sum(p.startswith("baseline.stage_layers = [1, 2, 4, 0]") for p in found) == 3
    # the layer-wise checks need the workload, which had a problem of its own
    assert not any(p.startswith("layerwise.stage_layers") for p in found)
