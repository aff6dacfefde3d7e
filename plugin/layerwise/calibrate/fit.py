"""What launch/calibrate.py measures and how its timings become a hardware profile: the grid
of shapes a config needs and the fits (pure; the timing itself is calibrate/kernels.py's).

Every fitted figure keeps the model's own formula (costmodel/kernels.py): a kernel costs
fixed + max(FLOPs / rate, bytes / bandwidth), so a rate is FLOPs / (time - fixed) and a
bandwidth the slope of time over bytes.
"""

import math
from dataclasses import dataclass

from layerwise.config.sections import RunConfig
from layerwise.costmodel.kernels import Chunk, layer_kernels

L2_EFFECT_THRESHOLD = 1.10
"""Evicted / resident time of the same weight-bound GEMM below which L2 residency is not
priced: a smaller gain is within run-to-run noise."""


@dataclass(frozen=True)
class Line:
    """seconds = intercept_s + bytes / (gbs x 1e9), a least-squares fit."""

    intercept_s: float
    gbs: float


def least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through (x, y) points (slope 0 when every
    x is the same)."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def fit_line(points: list[tuple[float, float]]) -> Line:
    """Least squares of (bytes, seconds); the intercept is clamped at 0 and the slope kept
    positive (a flat series is read as its largest rate)."""
    intercept, slope = least_squares(points)
    if slope <= 0:
        return Line(0.0, max(x / y for x, y in points) / 1e9)
    return Line(max(0.0, intercept), 1.0 / slope / 1e9)


def work_rate_tflops(flops: float, seconds: float, fixed_s: float) -> float:
    """FLOPs / (seconds - fixed): the rate the model multiplies by. The work is taken as no
    less than a tenth of the time, so noise at tiny sizes cannot make it infinite."""
    return flops / max(seconds - fixed_s, 0.1 * seconds) / 1e12


def gemm_shapes(config: RunConfig) -> list[tuple[int, int]]:
    """Every weight shape (K, N) the config's layers multiply by, at TP 1 (layer-wise) and at
    the baseline's tensor-parallel degree."""
    model, shapes = config.model, set()
    degrees = {1, config.baseline.tensor_parallel}
    layers = {0, min(1, model.pipeline_layers - 1), model.pipeline_layers - 1}  # every role
    for tp in degrees:  # (and both dense parities: column- and row-parallel)
        for layer in layers:
            chunk = Chunk(tokens=1, sequences=1, context=1, decode=False)
            for kernel in layer_kernels(model, layer, chunk, tp, 2):
                if kernel.kind == "gemm":
                    shapes.add(kernel.shape)
    return sorted(shapes)


def token_grid(config: RunConfig) -> list[int]:
    """Tokens M to time each shape at: powers of 4 from 1 up to a whole batch's tokens (at
    least 64), so every chunk a plan can pick lies inside the table."""
    top = max(64, config.workload.prefill_tokens)
    return [4**k for k in range(int(math.log(top, 4)) + 2) if 4 ** (k - 1) < top]


def seq_grid(config: RunConfig) -> list[int]:
    """Sequence lengths to time causal attention at: powers of 4 from 16 past seq_len."""
    top = max(16, config.workload.seq_len)
    return [4**k for k in range(2, int(math.log(top, 4)) + 2) if 4 ** (k - 1) < top]


def l2_priced(evicted_s: float, resident_s: float) -> bool:
    """Whether L2 residency measurably speeds up the weight-bound GEMM (L2_EFFECT_THRESHOLD)."""
    return evicted_s >= L2_EFFECT_THRESHOLD * resident_s


def significant(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits, for a readable profile."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))
