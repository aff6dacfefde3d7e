"""The calibration's fits and grids (pure: the timing itself is tested in tests/runtime)."""

import pytest

from layerwise.calibrate.fit import (
    L2_EFFECT_THRESHOLD,
    fit_line,
    gemm_shapes,
    l2_priced,
    least_squares,
    seq_grid,
    significant,
    token_grid,
    work_rate_tflops,
)
from layerwise.config.load import load_config
from layerwise.costmodel.kernels import Chunk, layer_kernels
from tests.conftest import CONFIGS


def test_fit_line_recovers_intercept_and_bandwidth():
    """5 us + bytes / 20 GB/s, sampled exactly."""
    points = [(size, 5e-6 + size / 20e9) for size in (1e5, 1e6, 4e6, 1.6e7)]
    line = fit_line(points)
    assert line.intercept_s == pytest.approx(5e-6)
    assert line.gbs == pytest.approx(20.0)


def test_fit_line_clamps_a_negative_intercept_and_a_flat_series():
    assert fit_line([(1e6, 1e-5), (2e6, 3e-5)]).intercept_s == 0.0
    flat = fit_line([(1e6, 1e-4), (2e6, 1e-4)])
    assert flat.intercept_s == 0.0 and flat.gbs == pytest.approx(2e6 / 1e-4 / 1e9)


def test_work_rate_takes_the_fixed_cost_off_and_never_divides_by_nothing():
    assert work_rate_tflops(2e6, 3e-6, 1e-6) == pytest.approx(1.0)  # 2 MFLOP in 2 us
    assert work_rate_tflops(1e6, 1e-6, 5e-6) == pytest.approx(1e6 / 1e-7 / 1e12)


@pytest.mark.parametrize(
    "stem", ["mock_gpt_baseline", "mock_llama_baseline", "seed_dense_baseline"]
)
def test_gemm_shapes_cover_every_gemm_the_layouts_price(stem):
    """Every GEMM of every layer at TP 1 and at the baseline's TP degree has its shape in the
    grid, so a calibrated profile prices no shape by its neighbour."""
    config = load_config(CONFIGS / f"{stem}.json")
    shapes = set(gemm_shapes(config))
    model = config.model
    for tp in (1, config.baseline.tensor_parallel):
        for layer in range(model.pipeline_layers):
            for kernel in layer_kernels(
                model, layer, Chunk(tokens=4, sequences=1, context=4, decode=False), tp, 2
            ):
                if kernel.kind == "gemm":
                    assert kernel.shape in shapes, (layer, tp, kernel.name)


def test_token_and_sequence_grids_bracket_the_workload():
    config = load_config(CONFIGS / "mock_gpt_baseline.json")  # 8 x 32 tokens
    tokens = token_grid(config)
    assert tokens[0] == 1 and tokens[-1] >= config.workload.prefill_tokens
    assert all(later == 4 * earlier for earlier, later in zip(tokens, tokens[1:]))
    seqs = seq_grid(config)
    assert seqs[0] == 16 and seqs[-1] >= config.workload.seq_len


def test_l2_is_priced_only_past_the_noise_threshold():
    assert l2_priced(L2_EFFECT_THRESHOLD * 10e-6, 10e-6)
    assert not l2_priced(1.05 * 10e-6, 10e-6)


def test_significant_digits():
    assert significant(123456.0) == 123500.0
    assert significant(0.000123456) == 0.0001235
    assert significant(0.0) == 0.0


def test_least_squares_recovers_a_line_and_keeps_a_negative_intercept():
    """The engine fit: 2 ms + 0.5 ms a step, and a line through negative values."""
    assert least_squares([(1.0, 2.5e-3), (4.0, 4e-3), (16.0, 10e-3)]) == pytest.approx((2e-3, 5e-4))
    assert least_squares([(1.0, -1.0), (3.0, 3.0)]) == pytest.approx((-3.0, 2.0))
    assert least_squares([(2.0, 1.0), (2.0, 3.0)]) == (2.0, 0.0)
