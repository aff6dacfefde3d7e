"""What pricing reads of a config, taken once: the builder's values against a shipped config."""

import pytest

from layerwise.config.load import load_config, parse_config
from layerwise.planner.inputs import plan_inputs
from tests.conftest import CONFIGS, seed_config_data


def test_plan_inputs_of_the_seed_config():
    """seed_dense_layerwise: 16 GPUs of h100-sxm (50 MiB of L2), half of it the budget, bf16."""
    config = load_config(CONFIGS / "seed_dense_layerwise.json")
    inputs = plan_inputs(config)
    assert inputs.model is config.model
    assert inputs.gpu is config.gpu
    assert inputs.workload is config.workload
    assert inputs.gpus == 16
    assert inputs.dtype_bytes == 2
    assert inputs.l2_budget_bytes == 0.5 * 50 * 2**20


@pytest.mark.parametrize("dtype,size", [("bf16", 2), ("fp16", 2), ("fp32", 4)])
def test_plan_inputs_follow_the_dtype_and_budget_fraction(dtype, size):
    data = seed_config_data()
    data["run"]["dtype"] = dtype
    data["layerwise"]["l2_budget_fraction"] = 0.25
    inputs = plan_inputs(parse_config(data))
    assert inputs.dtype_bytes == size
    assert inputs.l2_budget_bytes == 0.25 * 50 * 2**20
