"""tune/select.py with an injected measurement: the interleaved order, medians and ranges, the
overlap flag, failed candidates, Kendall's tau and the regret of the model's pick."""

import pytest

from layerwise.errors import AllRunsFailedError, RunFailedError
from layerwise.tune.candidates import Candidate
from layerwise.tune.select import (
    interleaved,
    kendall_tau,
    measure_rounds,
    summarise,
    top,
)


def candidate(name: str, tps: float, tpot_ms: float = 1.0) -> Candidate:
    return Candidate(
        name=name, config_data={}, predicted={"tps": tps, "tpot_ms": tpot_ms}, layout=name
    )


class Machine:
    """A fake machine: each call returns the next of a candidate's figures (or raises), and
    every call is logged as (name, round)."""

    def __init__(self, figures: dict[str, list], key: str = "tps"):
        self.figures = {name: list(values) for name, values in figures.items()}
        self.key = key
        self.calls: list[tuple[str, int]] = []

    def __call__(self, candidate: Candidate, round_: int) -> dict:
        self.calls.append((candidate.name, round_))
        value = self.figures[candidate.name].pop(0)
        if isinstance(value, Exception):
            raise value
        return {self.key: value}


def run(candidates, figures, repeats, objective="throughput"):
    machine = Machine(figures, "tps" if objective == "throughput" else "tpot_ms")
    outcomes = measure_rounds(candidates, repeats, machine, objective)
    return machine, outcomes


def test_rounds_are_interleaved():
    assert interleaved(["A", "B", "C"], 2) == [
        (1, "A"),
        (1, "B"),
        (1, "C"),
        (2, "A"),
        (2, "B"),
        (2, "C"),
    ]
    chosen = [candidate("A", 3.0), candidate("B", 2.0)]
    machine, _ = run(chosen, {"A": [1, 2, 3], "B": [4, 5, 6]}, 3)
    assert machine.calls == [("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3), ("B", 3)]


def test_median_and_range_over_the_rounds():
    chosen = [candidate("A", 300.0), candidate("B", 200.0)]
    _, outcomes = run(chosen, {"A": [100.0, 140.0, 90.0], "B": [50.0, 70.0, 60.0]}, 3)
    summary = summarise(chosen, outcomes, "throughput")
    a, b = summary.rows
    assert (a.median, a.low, a.high, a.values) == (100.0, 90.0, 140.0, (100.0, 140.0, 90.0))
    assert (b.median, b.low, b.high) == (60.0, 50.0, 70.0)
    assert (summary.winner, summary.runner_up, summary.overlap) == ("A", "B", False)
    assert (a.measured_rank, b.measured_rank) == (1, 2)


def test_overlapping_ranges_are_flagged():
    chosen = [candidate("A", 300.0), candidate("B", 200.0)]
    _, outcomes = run(chosen, {"A": [100.0, 80.0, 90.0], "B": [85.0, 70.0, 60.0]}, 3)
    summary = summarise(chosen, outcomes, "throughput")
    assert summary.winner == "A" and summary.overlap  # B's 60..85 meets A's 80..100


def test_a_failed_candidate_is_skipped_and_reported():
    chosen = [candidate("A", 300.0), candidate("B", 200.0), candidate("C", 100.0)]
    failure = RunFailedError("B.r1", "error: out of memory", 2, 600.0)
    machine, outcomes = run(chosen, {"A": [10.0, 11.0], "B": [failure], "C": [30.0, 31.0]}, 2)
    assert machine.calls == [("A", 1), ("B", 1), ("C", 1), ("A", 2), ("C", 2)]
    summary = summarise(chosen, outcomes, "throughput")
    failed = summary.rows[1]
    assert failed.values == () and failed.measured_rank is None
    assert failed.error == "run 'B.r1' failed (exit 2): error: out of memory"
    assert (summary.winner, summary.runner_up) == ("C", "A")


def test_a_run_without_the_objectives_figure_fails_its_candidate():
    chosen = [candidate("A", 300.0, 1.0), candidate("B", 200.0, 2.0)]
    machine = Machine({"A": [None], "B": [4.0, 5.0]}, key="tpot_ms")
    outcomes = measure_rounds(chosen, 2, machine, "latency")
    assert outcomes[0].error == "round 1 measured no tpot_ms"
    assert machine.calls == [("A", 1), ("B", 1), ("B", 2)]


def test_all_failed_raises_with_every_error():
    chosen = [candidate("A", 300.0), candidate("B", 200.0)]
    figures = {"A": [RuntimeError("a broke")], "B": [OSError("no results file")]}
    _, outcomes = run(chosen, figures, 3)
    with pytest.raises(AllRunsFailedError) as raised:
        summarise(chosen, outcomes, "throughput")
    assert raised.value.errors == {"A": "a broke", "B": "no results file"}
    assert "all 2 candidates failed" in str(raised.value)


def test_top_k_takes_the_first_k_or_all():
    chosen = [candidate(name, 1.0) for name in "ABC"]
    assert [c.name for c in top(chosen, 2)] == ["A", "B"]
    assert [c.name for c in top(chosen, 10)] == ["A", "B", "C"]
    with pytest.raises(ValueError, match="k = 0 must be at least 1"):
        top(chosen, 0)


def test_tau_is_one_for_a_perfect_ranking_and_minus_one_for_a_reversed_one():
    chosen = [candidate(name, tps) for name, tps in zip("ABCD", (400.0, 300.0, 200.0, 100.0))]
    same = {name: [value] for name, value in zip("ABCD", (40.0, 30.0, 20.0, 10.0))}
    reversed_ = {name: [value] for name, value in zip("ABCD", (10.0, 20.0, 30.0, 40.0))}
    assert summarise(chosen, run(chosen, same, 1)[1], "throughput").tau == pytest.approx(1.0)
    assert summarise(chosen, run(chosen, reversed_, 1)[1], "throughput").tau == pytest.approx(-1)


def test_tau_of_one_swap_and_of_ties():
    assert kendall_tau([(4, 40), (3, 20), (2, 30), (1, 10)]) == pytest.approx(4 / 6)
    assert kendall_tau([(1, 10), (1, 20)]) is None  # predicted all tied: undefined
    assert kendall_tau([(1, 10)]) is None


def test_regret_for_throughput_is_pick_over_best():
    chosen = [candidate("A", 300.0), candidate("B", 200.0)]
    _, outcomes = run(chosen, {"A": [80.0], "B": [100.0]}, 1)
    summary = summarise(chosen, outcomes, "throughput")
    assert (summary.pick, summary.winner) == ("A", "B")
    assert summary.regret == pytest.approx(0.8)
    assert summary.tau == pytest.approx(-1.0)


def test_regret_for_latency_is_best_over_pick():
    chosen = [candidate("A", 1.0, tpot_ms=2.0), candidate("B", 1.0, tpot_ms=3.0)]
    machine = Machine({"A": [5.0], "B": [4.0]}, key="tpot_ms")
    summary = summarise(chosen, measure_rounds(chosen, 1, machine, "latency"), "latency")
    assert (summary.pick, summary.winner) == ("A", "B")  # lower TPOT wins
    assert summary.regret == pytest.approx(4.0 / 5.0)


def test_paired_regret_compares_pick_and_winner_within_each_round():
    """Round 3 ran fast for both: the medians (20 vs 24) give 0.833, the rounds' own ratios
    1.1, 0.833 and 0.875 give a median of 0.875; a candidate that failed after round 2 is
    paired over the rounds both ran."""
    chosen = [candidate("P", 300.0), candidate("W", 200.0)]
    _, outcomes = run(chosen, {"P": [11.0, 20.0, 35.0], "W": [10.0, 24.0, 40.0]}, 3)
    summary = summarise(chosen, outcomes, "throughput")
    assert (summary.pick, summary.winner) == ("P", "W")
    assert summary.regret == pytest.approx(20 / 24)
    assert summary.round_regrets == pytest.approx((1.1, 20 / 24, 35 / 40))
    assert summary.paired_regret == pytest.approx(35 / 40)
    failed = {"P": [11.0, 20.0, RuntimeError("x")], "W": [10.0, 24.0, 40.0]}
    _, outcomes = run(chosen, failed, 3)
    assert summarise(chosen, outcomes, "throughput").round_regrets == pytest.approx((1.1, 20 / 24))
    latency = [candidate("P", 1.0, tpot_ms=1.0), candidate("W", 1.0, tpot_ms=2.0)]
    machine = Machine({"P": [4.0, 6.0], "W": [5.0, 3.0]}, key="tpot_ms")
    summary = summarise(latency, measure_rounds(latency, 2, machine, "latency"), "latency")
    assert summary.round_regrets == pytest.approx((1.25, 0.5))  # winner / pick, per round


def test_the_pick_is_the_best_predicted_candidate_that_was_measured():
    chosen = [candidate("A", 300.0), candidate("B", 200.0), candidate("C", 100.0)]
    _, outcomes = run(chosen, {"A": [RuntimeError("x")], "B": [50.0], "C": [100.0]}, 1)
    summary = summarise(chosen, outcomes, "throughput")
    assert (summary.pick, summary.winner, summary.regret) == ("B", "C", 0.5)
    assert summary.rows[0].measured_rank is None


def test_the_models_pick_winning_has_regret_one():
    chosen = [candidate("A", 300.0), candidate("B", 200.0)]
    _, outcomes = run(chosen, {"A": [120.0, 100.0], "B": [90.0, 95.0]}, 2)
    summary = summarise(chosen, outcomes, "throughput")
    assert (summary.pick, summary.winner, summary.regret) == ("A", "A", 1.0)
