"""When the planner counts two numbers as the same: one named tolerance per meaning.

Predictions are not finer than about a percent (docs/results.md), so two predicted figures that
close tie and a stated rule breaks the tie; two stage times computed in another order differ
only by float rounding. Every rule in planner/ and every sentence of the plan that states a
tolerance uses these names (tests/planner/test_tolerances.py checks the wording).

The partitioner keeps its own numeric-search tolerances, which say how exact its answer is,
not when two layouts tie: partition/search.py RELATIVE_TOLERANCE (1e-9, the optimality it
proves) and BISECTION_TOLERANCE (1e-6, where its bisection stops before that proof), and
partition/ties.py TIE_GRID (2**40, the grid its tie-break compares stage times on).
"""

SAME_FIGURE = 0.01
"""Two predicted figures (prefill tokens/s or time, TPOT) within 1% of each other tie: the
chunk choice (choose.best_of), which chunks plan_replicas prices in full, the replica and the
recommended layout (choose.best_for), and the recommendation's wording (plan.py)."""

EQUAL_TIMES = 1e-9
"""Two computed stage times within a relative 1e-9 are equal (float rounding of the same
sums): the megatron split's ties (baseline.py)."""


def percent(tolerance: float) -> str:
    """A tolerance as the plan and the docs quote it: 0.01 -> "1%", 0.005 -> "0.5%"."""
    return f"{tolerance * 100:g}%"
