"""Which candidate measured best, and how well the cost model ranked them: pure, so the rules are
tested without launching anything (the measuring function is passed in).

Runs are interleaved, round r running every candidate once (A B C, A B C, ...), so a slow phase
of a shared machine spreads over all candidates instead of falling on one. Each candidate's
figure is the median over its rounds, with the min..max range beside it; the winner has the
best median. Kendall's tau compares the predicted and measured orders of the measured
candidates (1: the same order, -1: reversed); regret is the measured figure of the model's own
pick (the best predicted candidate that was measured) as a fraction of the best measured one
(for latency: best / pick), so 1 means the model picked the winner. The paired regret takes the
same ratio within each round (the pick against the winner in one window of machine speed),
median over the rounds both ran: the drift between rounds taken out."""

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

from layerwise.config.sections import Objective
from layerwise.errors import AllRunsFailedError
from layerwise.tune.candidates import Candidate
from layerwise.tune.objective import KEYS, best_first, higher_is_better

Measure = Callable[[Candidate, int], dict]
"""(candidate, round from 1) -> the run's measured figures, keyed as in a results JSON; raises
RuntimeError, OSError or ValueError when the run fails."""
FAILURES = (RuntimeError, OSError, ValueError)


def top(ranked: Sequence[Candidate], k: int) -> list[Candidate]:
    """The first `k` of the ranked candidates (all of them when there are fewer)."""
    if k < 1:
        raise ValueError(f"top: k = {k} must be at least 1")
    return list(ranked[:k])


def interleaved(names: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """(round, name) in run order: round 1 runs every name in order, then round 2, ..."""
    return [(round_, name) for round_ in range(1, repeats + 1) for name in names]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One candidate's runs: the measured figures of each round it ran, or the error that
    stopped it (a failed candidate is not run again)."""

    name: str
    runs: tuple[dict, ...] = ()
    error: str = ""


def measure_rounds(
    candidates: Sequence[Candidate], repeats: int, measure: Measure, objective: Objective
) -> list[Outcome]:
    """Every candidate run `repeats` rounds in interleaved order; a run that fails, or measures
    no figure for the objective, ends its candidate's runs with its error."""
    key = KEYS[objective]
    by_name = {candidate.name: candidate for candidate in candidates}
    runs: dict[str, list[dict]] = {name: [] for name in by_name}
    errors: dict[str, str] = {}
    for round_, name in interleaved(list(by_name), repeats):
        if name in errors:
            continue
        try:
            measured = measure(by_name[name], round_)
        except FAILURES as error:
            errors[name] = str(error)
            continue
        if measured.get(key) is None:
            errors[name] = f"round {round_} measured no {key}"
            continue
        runs[name].append(measured)
    return [Outcome(name=n, runs=tuple(runs[n]), error=errors.get(n, "")) for n in by_name]


@dataclass(frozen=True, kw_only=True)
class Row:
    """One candidate in the summary: its predicted and measured figure for the objective."""

    name: str
    predicted: float
    predicted_rank: int
    """1 = best predicted among the candidates run."""
    values: tuple[float, ...] = ()
    """The measured figure of each round (empty: failed)."""
    measured_rank: int | None = None
    """1 = best measured median; None: failed."""
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def low(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def high(self) -> float | None:
        return max(self.values) if self.values else None


@dataclass(frozen=True, kw_only=True)
class Summary:
    """What the runs say: the winner, how sure, and how well the model ranked them."""

    objective: Objective
    key: str
    rows: tuple[Row, ...]
    """In predicted order."""
    winner: str
    runner_up: str | None
    overlap: bool
    """The runner-up's min..max range meets the winner's: the order of the two is not sure."""
    pick: str
    """The model's pick: the best predicted candidate that was measured."""
    regret: float
    """The pick's median as a fraction of the winner's (latency: winner / pick); at most 1."""
    round_regrets: tuple[float, ...]
    """The same ratio within each round that both ran, in round order."""
    tau: float | None
    """Kendall's tau-b of predicted against measured; None with fewer than 2 measured or when
    either side is all ties."""

    @property
    def paired_regret(self) -> float:
        """The median of round_regrets."""
        return statistics.median(self.round_regrets)


def kendall_tau(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Kendall's tau-b of (predicted, measured) pairs: (concordant - discordant) over the
    geometric mean of the pairs untied on each side; None when undefined."""
    concordant = discordant = tied_x = tied_y = 0
    for (x1, y1), (x2, y2) in combinations(pairs, 2):
        dx, dy = x1 - x2, y1 - y2
        tied_x += dx == 0
        tied_y += dy == 0
        concordant += dx * dy > 0
        discordant += dx * dy < 0
    total = len(pairs) * (len(pairs) - 1) // 2
    scale = math.sqrt((total - tied_x) * (total - tied_y))
    return (concordant - discordant) / scale if scale else None


def ranked_rows(
    candidates: Sequence[Candidate], outcomes: Sequence[Outcome], objective: Objective
) -> list[Row]:
    """The rows in predicted order, each measured one with its rank by median."""
    key = KEYS[objective]
    found = {outcome.name: outcome for outcome in outcomes}
    rows = [
        Row(
            name=candidate.name,
            predicted=candidate.predicted[key],
            predicted_rank=rank,
            values=tuple(run[key] for run in found[candidate.name].runs),
            error=found[candidate.name].error,
        )
        for rank, candidate in enumerate(candidates, start=1)
    ]
    measured = sorted(
        (row for row in rows if row.values), key=lambda r: best_first(objective, r.median)
    )
    ranks = {row.name: rank for rank, row in enumerate(measured, start=1)}
    return [replace(row, measured_rank=ranks.get(row.name)) for row in rows]


def overlaps(a: Row, b: Row) -> bool:
    return a.low <= b.high and b.low <= a.high


def summarise(
    candidates: Sequence[Candidate], outcomes: Sequence[Outcome], objective: Objective
) -> Summary:
    """The summary of the runs; AllRunsFailedError (with each error) when none was measured."""
    rows = ranked_rows(candidates, outcomes, objective)
    measured = sorted((row for row in rows if row.values), key=lambda row: row.measured_rank)
    if not measured:
        raise AllRunsFailedError({row.name: row.error for row in rows})
    winner, runner_up = measured[0], (measured[1] if len(measured) > 1 else None)
    pick = min(measured, key=lambda row: row.predicted_rank)
    ratios = [pick.median / winner.median, *(p / w for p, w in zip(pick.values, winner.values))]
    if not higher_is_better(objective):
        ratios = [1 / ratio for ratio in ratios]
    return Summary(
        objective=objective,
        key=KEYS[objective],
        rows=tuple(rows),
        winner=winner.name,
        runner_up=runner_up and runner_up.name,
        overlap=runner_up is not None and overlaps(winner, runner_up),
        pick=pick.name,
        regret=ratios[0],
        round_regrets=tuple(ratios[1:]),
        tau=kendall_tau([(row.predicted, row.median) for row in measured]),
    )
