"""A config whose own layout does not fit: the per-GPU totals (hand-computed KV bytes) and the
largest batch that fits, found by bisection."""

import json

import pytest

from layerwise.config.load import parse_config
from layerwise.errors import ConfigError
from layerwise.planner.capacity import fits_at, largest
from layerwise.planner.plan import make_plan
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
