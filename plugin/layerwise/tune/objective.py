"""Which figure an objective ranks by and which way is better, in one place, so the candidates'
predicted order and the measured order use the same rule."""

import math

from layerwise.config.sections import Objective
from layerwise.report.labels import FIGURES, Figure

KEYS = {"throughput": "tps", "latency": "tpot_ms"}
"""The results-JSON key of each objective's figure: prefill tokens/s, ms per decode step."""


def figure_of(objective: Objective) -> Figure:
    """The objective's figure (its key, label and format)."""
    return next(figure for figure in FIGURES if figure.key == KEYS[objective])


def higher_is_better(objective: Objective) -> bool:
    return objective == "throughput"


def best_first(objective: Objective, value: float | None) -> float:
    """A sort key that puts the better value of the objective's figure first (None last)."""
    if value is None:
        return math.inf
    return -value if higher_is_better(objective) else value
