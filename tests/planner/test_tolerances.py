"""One tolerance per meaning: the plan's and the docs' wording say what the rules do."""

import re
from dataclasses import replace

import pytest

from layerwise.planner.choose import best_for, tpot_cost, tps_cost, within_tie
from layerwise.planner.plan import _recommend
from layerwise.planner.tolerances import SAME_FIGURE, percent
from tests.conftest import ROOT


def test_percent_quotes_a_tolerance_as_written():
    assert (percent(0.01), percent(0.005), percent(0.1)) == ("1%", "0.5%", "10%")


@pytest.mark.parametrize("objective", ["throughput", "latency"])
@pytest.mark.parametrize("apart", [0.7, 1.3])  # x SAME_FIGURE: a tie, then not one
def test_the_reason_calls_tpots_a_tie_exactly_when_best_for_does(round_plan, objective, apart):
    baseline = replace(round_plan.baseline, tpot_s=1e-3, tps=100.0)
    layerwise = replace(round_plan.layerwise, tpot_s=1e-3 * (1 + apart * SAME_FIGURE), tps=200.0)
    tied = len(within_tie((baseline, layerwise), tpot_cost)) == 2
    assert tied is (apart < 1)
    mode, reason = _recommend(objective, baseline, layerwise)
    assert mode == best_for(objective, (baseline, layerwise)).mode
    assert (f"tie on TPOT (1.000 vs {layerwise.tpot_s * 1e3:.3f} ms" in reason) is tied
    assert ("has the lower TPOT" in reason) is not tied
    if tied:
        assert f"per decode step, within {percent(SAME_FIGURE)})" in reason


@pytest.mark.parametrize("apart", [0.7, 1.3])
def test_the_reason_calls_throughputs_a_tie_exactly_when_best_for_does(round_plan, apart):
    baseline = replace(round_plan.baseline, tpot_s=1.0, tps=100.0)
    layerwise = replace(round_plan.layerwise, tpot_s=2.0, tps=100.0 / (1 - apart * SAME_FIGURE))
    tied = len(within_tie((baseline, layerwise), tps_cost)) == 2
    assert tied is (apart < 1)
    mode, reason = _recommend("throughput", baseline, layerwise)
    assert mode == ("baseline" if tied else "layerwise")  # a tie goes to the lower TPOT
    assert (f"tokens/s, within {percent(SAME_FIGURE)}); " in reason) is tied
    assert ("x the baseline TP2 x PP2's prefill throughput" in reason) is not tied


@pytest.mark.parametrize(
    "doc,phrase",
    [
        ("docs/usage.md", "figures within {} tie"),
        ("docs/design.md", "within {} of the best"),
        ("docs/cost-model.md", "near-ties between chunk sizes (prefill tokens/s within {} of"),
    ],
)
def test_the_docs_quote_the_tie_tolerance_the_planner_uses(doc, phrase):
    """Each doc states the rule with SAME_FIGURE's percentage, and no other percentage."""
    text = " ".join((ROOT / doc).read_text().split())
    assert phrase.format(percent(SAME_FIGURE)) in text
    quoted = re.findall(r"within (\d+(?:\.\d+)?%)", text)
    assert set(quoted) == {percent(SAME_FIGURE)}
