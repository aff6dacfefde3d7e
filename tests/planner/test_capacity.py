"""A config whose own layout does not fit: the per-GPU totals (hand-computed KV bytes) and the
largest batch that fits, found by bisection."""

import json

import pytest

from layerwise.config.load import parse_config
from layerwise.errors import ConfigError
from layerwise.planner.capacity import at_largest_batches, fits_at, largest, shaped_as
from layerwise.planner.plan import make_plan
from layerwise.report.plan_json import plan_dict
from layerwise.report.text import render
from tests.conftest import CONFIGS

GIB = 2**30


def test_largest_is_the_last_multiple_that_fits():
    assert largest(lambda batch: batch <= 37, 4, 100) == 36
    assert largest(lambda batch: batch <= 37, 1, 100) == 37
    assert largest(lambda batch: batch <= 37, 1, 20) == 20
    assert largest(lambda batch: False, 2, 100) is None
    assert largest(lambda batch: True, 8, 4) is None  # no multiple of 8 up to 4


@pytest.mark.parametrize(
    "name, batch, stages, layers",
    [("llama-3.1-405b_h200x8", 512, 8, 126), ("llama-3.1-70b_h200x8", 2048, 8, 80)],
)
def test_overflow_names_weights_and_kv_per_gpu_and_the_largest_batch(name, batch, stages, layers):
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    data["workload"]["batch_size"] = batch
    config = parse_config(data, "big.json", CONFIGS)
    with pytest.raises(ConfigError) as caught:
        make_plan(config)
    problems = caught.value.problems
    # KV cache per GPU by hand: 2 (K and V) x 8 KV heads x 128 x 2 bytes per token per layer,
    # every prompt and decode token of the batch, the layers spread over the stages
    tokens = batch * (config.workload.seq_len + config.workload.decode_steps)
    kv_gib = 2 * 8 * 128 * 2 * tokens * layers / stages / GIB
    assert f"KV cache {kv_gib:.2f} GiB ({batch} sequences x " in problems[1]
    found = int(problems[2].split(": ", 1)[1].split(" ")[0])
    assert found % stages == 0  # 1 replica x 8 stages: decode can stream
    assert fits_at(config, found) and not fits_at(config, found + stages)
    assert "does not fit HBM" in problems[0]


def mock_max(**layerwise):
    data = json.loads((CONFIGS / "mock_llama_layerwise.json").read_text())
    data["workload"]["batch_size"] = "max"
    data["layerwise"].update(layerwise)
    return data


def test_max_batch_resolves_to_the_largest_batch_the_own_layout_fits():
    config = parse_config(mock_max(), "max.json", CONFIGS)
    found = config.workload.batch_size
    assert config.max_batch and found % 4 == 0  # 1 replica x 4 stages
    assert fits_at(config, found) and not fits_at(config, found + 4)
    plan = make_plan(config)
    assert plan.layerwise.memory_bytes_per_gpu <= config.gpu.usable_bytes
    assert 'workload.batch_size "max": ' + str(found) in render(plan)
    assert plan_dict(plan)["max_batch"] is True and plan_dict(plan)["batch_size"] == found


def test_max_batch_with_a_fixed_micro_batch_count_is_refused():
    with pytest.raises(ConfigError) as caught:
        parse_config(mock_max(micro_batches=4), "max.json", CONFIGS)
    assert 'layerwise.micro_batches = 4: workload.batch_size "max" needs "auto"' in str(
        caught.value
    )


def test_max_batch_when_not_even_one_batch_fits():
    data = json.loads((CONFIGS / "llama-3.1-405b_h200x8.json").read_text())
    data["workload"]["batch_size"] = "max"
    data["workload"]["seq_len"] = 2**22  # one sequence's KV cache alone overflows
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "max.json", CONFIGS)
    message = str(caught.value)
    assert 'workload.batch_size "max": not even 8 sequences fit the layerwise layout' in message
    assert "KV cache" in message and "no batch of 8 or more fits this layout" in message


def test_every_layout_at_its_own_largest_batch_best_decode_first():
    config = parse_config(mock_max(), "max.json", CONFIGS)
    rows = at_largest_batches(config, make_plan(config).candidates)
    fitting = [row for row in rows if row.layout is not None]
    assert len(fitting) >= 3
    assert [row.layout.decode_tps for row in fitting] == sorted(
        (row.layout.decode_tps for row in fitting), reverse=True
    )
    for row in fitting:
        shaped = shaped_as(config, row.layout)
        step = row.layout.replicas * len(row.layout.stages)
        assert fits_at(shaped, row.batch_size) and not fits_at(shaped, row.batch_size + step)
