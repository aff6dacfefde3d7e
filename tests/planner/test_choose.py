"""Choosing among priced layouts: near-ties broken by the stated rules."""

import copy
from dataclasses import replace

from layerwise.config.load import parse_config
from layerwise.planner.choose import best_for, best_of
from layerwise.planner.plan import make_plan
from tests.planner.plans import with_l2


def test_best_for_breaks_ties_by_the_other_figure_then_the_deepest_pipeline(round_plan):
    base = round_plan.layerwise  # 4 stages
    deep = replace(base, tps=100.0, tpot_s=1.0)
    shallow = replace(base, stages=base.stages[:1], tps=100.5, tpot_s=1.005)
    fast = replace(base, stages=base.stages[:2], tps=100.9, tpot_s=2.0)
    assert best_for("throughput", [shallow, fast, deep]) is deep  # TPS and TPOT tie: deepest
    assert best_for("throughput", [shallow, fast]) is shallow  # TPS ties: the lower TPOT
    assert best_for("throughput", [deep, replace(fast, tps=102.0)]).tps == 102.0
    assert best_for("latency", [fast, shallow, deep]) is deep  # TPOT and TPS tie: deepest
    assert best_for("latency", [replace(deep, tpot_s=1.0051, tps=99.0), shallow]) is shallow


def test_near_tied_chunks_prefer_l2_only_where_l2_was_measured(seed_data, tmp_path):
    """Two layouts within 1% of each other's tokens/s: the one whose tiles fit L2 wins only on
    a profile that prices L2, otherwise the lower TPOT does."""
    for l2_gbs, expected in ((7500.0, "fits"), (0.0, "faster decode")):
        config = parse_config(with_l2(copy.deepcopy(seed_data), tmp_path, l2_gbs))
        layout = make_plan(config).layerwise
        fits = replace(layout, tps=99.5, tpot_s=2.0, chunk_fits_l2=True)
        faster = replace(layout, tps=100.0, tpot_s=1.0, chunk_fits_l2=False)
        chosen = best_of(config.gpu, [faster, fits])
        assert chosen is {"fits": fits, "faster decode": faster}[expected]
