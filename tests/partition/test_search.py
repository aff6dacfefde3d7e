"""The partitioner is optimal (against brute force), respects capacity and is deterministic;
ties go to the least total time, then the most even; bad numbers are refused up front."""

import itertools
import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerwise import partition_costs
from layerwise.errors import CapacityError
from layerwise.partition.search import (
    Link,
    PartitionInputError,
    PartitionProblem,
    _Chain,
    _search,
    fits_capacity,
    partition,
    stage_costs,
    uniform_boundaries,
)
from layerwise.partition.ties import TIE_GRID


def placements(problem: PartitionProblem):
    """Every contiguous placement (empty stages allowed) that fits."""
    layers, stages = problem.num_layers, problem.num_stages
    for cuts in itertools.combinations_with_replacement(range(layers + 1), stages - 1):
        bounds = (0, *cuts, layers)
        if fits_capacity(problem, bounds):
            yield bounds


def brute_force(problem: PartitionProblem) -> float:
    """Smallest bottleneck over every placement that fits."""
    return min((max(stage_costs(problem, b)) for b in placements(problem)), default=math.inf)


def tie_key(problem: PartitionProblem, bounds: tuple[int, ...], limit: float) -> tuple:
    """(sum of hops, sum of squared stage times, sum of squared compute times) with each layer
    cost and hop rounded to the partitioner's grid of limit / TIE_GRID: the hops are what the sum
    of stage times varies by (each is paid by two stages)."""
    scale = min(TIE_GRID / limit, 1e300) if limit > 0 else 1.0
    grid = [0, *itertools.accumulate(round(c * scale) for c in problem.layer_costs)]
    hops = [link.time(problem.boundary_bytes[b]) for link, b in zip(problem.links, bounds[1:])]
    hops = [0, *(round(min(h, limit) * scale) for h in hops), 0]  # none in 0, none out of last
    busy = [grid[b] - grid[a] for a, b in zip(bounds, bounds[1:])]
    return (
        sum(hops),
        sum((hops[s] + busy[s] + hops[s + 1]) ** 2 for s in range(len(busy))),
        sum(b**2 for b in busy),
    )


costs = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@st.composite
def problems(draw, uniform_bytes: bool, slow: bool = False, tight: bool = False):
    """Small random problems; `slow`: links whose hops cost as much as several layers;
    `tight`: capacities down to 0, so that memory decides."""
    layers = draw(st.integers(1, 7))
    stages = draw(st.integers(1, 5 if slow or tight else 4))
    if uniform_bytes:
        boundary = (draw(st.integers(0, 5)),) * (layers + 1)
    else:
        boundary = tuple(
            draw(st.lists(st.integers(0, 9), min_size=layers + 1, max_size=layers + 1))
        )
    speeds = [0.25, 0.5, 1.0] if slow else [1.0, 2.0, 8.0]
    links = tuple(
        Link(draw(st.floats(0.0, 6.0 if slow else 2.0)), draw(st.sampled_from(speeds)))
        for _ in range(stages - 1)
    )
    resident = tuple(draw(st.lists(st.integers(0, 5), min_size=layers, max_size=layers)))
    room = st.integers(0, 8) if tight else st.integers(3, 20)
    capacity = tuple(draw(st.lists(room, min_size=stages, max_size=stages)))
    layer_costs = tuple(draw(st.lists(costs, min_size=layers, max_size=layers)))
    return PartitionProblem(
        layer_costs,
        tuple(map(float, boundary)),
        tuple(map(float, resident)),
        links,
        tuple(map(float, capacity)),
    )


def check_optimal(problem: PartitionProblem) -> None:
    expected = brute_force(problem)
    if math.isinf(expected):
        with pytest.raises(CapacityError):
            partition(problem)
        return
    found = partition(problem)
    assert found.boundaries[0] == 0 and found.boundaries[-1] == problem.num_layers
    assert list(found.boundaries) == sorted(found.boundaries)
    assert fits_capacity(problem, found.boundaries)
    assert found.bottleneck == pytest.approx(expected, rel=1e-8, abs=1e-12)
    limit = _search(_Chain(problem))[1]  # the bottleneck the tie-break worked within
    ties = [b for b in placements(problem) if max(stage_costs(problem, b)) <= limit]
    best = min(tie_key(problem, b, limit) for b in ties)
    assert tie_key(problem, found.boundaries, limit) == best


@settings(max_examples=300, deadline=None)
@given(problems(uniform_bytes=True))
def test_equal_sizes_match_brute_force(problem):
    check_optimal(problem)


@settings(max_examples=400, deadline=None)
@given(problems(uniform_bytes=False))
def test_differing_sizes_match_brute_force(problem):
    check_optimal(problem)


@settings(max_examples=300, deadline=None)
@given(problems(uniform_bytes=False, slow=True))
def test_slow_links_match_brute_force(problem):
    check_optimal(problem)


@settings(max_examples=300, deadline=None)
@given(problems(uniform_bytes=False, tight=True))
def test_tight_memory_matches_brute_force(problem):
    check_optimal(problem)


def stage_time(problem: PartitionProblem, s: int, first: int, stop: int) -> float:
    """stage_costs() of stage s holding [first, stop), the stages before it empty at first."""
    cuts = (first,) * (s + 1) + (stop,) * (problem.num_stages - s)
    return stage_costs(problem, cuts)[s]


def reference_bottleneck(problem: PartitionProblem) -> float:
    """The textbook O(stages x layers^2) DP: best[e] = the smallest bottleneck of the stages so
    far, the last of them ending at cut e."""
    layers, resident = problem.num_layers, [0.0, *itertools.accumulate(problem.resident_bytes)]
    best = [0.0] + [math.inf] * layers
    for s, room in enumerate(problem.capacity_bytes):
        best = [
            min(
                (
                    max(best[a], stage_time(problem, s, a, e))
                    for a in range(e + 1)
                    if resident[e] - resident[a] <= room
                ),
                default=math.inf,
            )
            for e in range(layers + 1)
        ]
    return best[layers]


@st.composite
def longer_problems(draw):
    """Up to 40 layers with structured sizes: token ids in and logits out, rising, falling,
    sawtooth or random, over links from fast to slower than several layers."""
    layers, stages = draw(st.integers(1, 40)), draw(st.integers(1, 8))
    shape = draw(st.sampled_from(["ends", "rising", "falling", "sawtooth", "random"]))
    sizes = {
        "ends": [0.1] + [4.0] * (layers - 1) + [draw(st.sampled_from([0.5, 40.0]))],
        "rising": [i / 4 for i in range(layers + 1)],
        "falling": [(layers - i) / 4 for i in range(layers + 1)],
        "sawtooth": [float(i % 5) for i in range(layers + 1)],
        "random": draw(st.lists(st.floats(0, 9), min_size=layers + 1, max_size=layers + 1)),
    }[shape]
    if layers == 1 and shape == "ends":
        sizes = sizes[:1] + sizes[-1:]
    speed = draw(st.sampled_from([0.25, 1.0, 8.0]))
    capacity = draw(st.sampled_from([math.inf, 12.0, 30.0]))
    return PartitionProblem(
        tuple(draw(st.lists(costs, min_size=layers, max_size=layers))),
        tuple(sizes),
        tuple(float(i % 4) for i in range(layers)),
        (Link(draw(st.sampled_from([0.0, 0.5])), speed),) * (stages - 1),
        (capacity,) * stages,
    )


@settings(max_examples=150, deadline=None)
@given(longer_problems())
def test_longer_chains_match_the_textbook_dp(problem):
    expected = reference_bottleneck(problem)
    if math.isinf(expected):
        with pytest.raises(CapacityError):
            partition(problem)
        return
    found = partition(problem)
    assert fits_capacity(problem, found.boundaries)
    assert found.bottleneck == pytest.approx(expected, rel=1e-8, abs=1e-12)


FREE_LINK = Link(0.0, 1.0)


def simple(layer_costs, stages, capacity=math.inf, resident=None, link=FREE_LINK):
    layers = len(layer_costs)
    return PartitionProblem(
        tuple(map(float, layer_costs)),
        (0.0,) * (layers + 1),
        tuple(map(float, resident or [0] * layers)),
        (link,) * (stages - 1),
        (float(capacity),) * stages,
    )


def test_uneven_layers_balance_by_cost_not_count():
    found = partition(simple([8, 1, 1, 1, 1, 1, 1, 1, 1], stages=2))
    assert found.boundaries == (0, 1, 9)
    assert found.stage_costs == (8.0, 8.0)


def test_capacity_forces_a_worse_bottleneck():
    roomy = partition(simple([4, 4, 4, 4], stages=2, resident=[1, 1, 1, 3], capacity=4))
    assert roomy.boundaries == (0, 2, 4)
    tight = partition(simple([4, 4, 4, 4], stages=2, resident=[1, 1, 1, 3], capacity=3))
    assert tight.boundaries == (0, 3, 4) and tight.bottleneck == 12.0


def test_more_stages_than_layers_leaves_stages_empty():
    found = partition(simple([3, 5], stages=4, link=Link(0.5, 1.0)))
    assert sum(1 for a, b in zip(found.boundaries, found.boundaries[1:]) if a == b) == 2
    # The costly layer goes last, where there is nothing to send: 0.5 receive + 5.
    assert found.bottleneck == pytest.approx(5.5)


def test_slow_link_moves_work_off_the_stages_it_touches():
    # Stages 1 and 2 each pay 3 s for the slow link between them; stage 0 pays nothing.
    problem = PartitionProblem(
        (1.0,) * 12, (0.0,) * 13, (0.0,) * 12, (Link(0.0, 1.0), Link(3.0, 1.0)), (math.inf,) * 3
    )
    found = partition(problem)
    assert found.boundaries == (0, 6, 9, 12)
    assert found.stage_costs == (6.0, 6.0, 6.0)
    assert max(stage_costs(problem, uniform_boundaries(12, 3))) == 7.0


def test_capacity_error_carries_the_numbers():
    with pytest.raises(CapacityError) as error:
        partition(simple([1, 1], stages=2, resident=[5 * 2**30, 1], capacity=4 * 2**30))
    assert error.value.needed_bytes == 5 * 2**30
    assert error.value.capacity_bytes == 4 * 2**30
    assert "5.00 GiB" in str(error.value) and "4.00 GiB" in str(error.value)


def test_capacity_error_names_the_layers_that_cannot_share_a_stage():
    gib = 2**30
    problem = simple(
        [1, 1, 1], stages=2, resident=[60 * gib, 70 * gib, 20 * gib], capacity=80 * gib
    )
    with pytest.raises(CapacityError) as error:
        partition(problem)
    assert str(error.value) == (
        "layers 0-2 (150.00 GiB) do not fit 2 stages in order: "
        "stage 0 (capacity 80.00 GiB) holds layer 0 (60.00 GiB) and cannot also take layer 1 "
        "(70.00 GiB); stage 1 (capacity 80.00 GiB) holds layer 1 (70.00 GiB) and cannot also "
        "take layer 2 (20.00 GiB), leaving layer 2 (20.00 GiB): "
        "needs 90.00 GiB per GPU, capacity 80.00 GiB"
    )
    assert error.value.needed_bytes == 90 * gib and error.value.capacity_bytes == 80 * gib


def test_capacity_error_summarises_many_stages():
    with pytest.raises(CapacityError) as error:
        partition(simple([1] * 10, stages=4, resident=[3] * 10, capacity=7))
    message = str(error.value)
    assert message.startswith("layers 0-9 (0.00 GiB) do not fit 4 stages in order: stage 0 ")
    assert "stages 1-2 hold layers 2-5 (0.00 GiB); stage 3 (capacity 0.00 GiB) holds " in message
    assert "leaving layers 8-9" in message


def test_deterministic():
    problem = simple([1, 3, 2, 2, 5, 1, 1, 4], stages=3)
    assert len({partition(problem) for _ in range(5)}) == 1


@pytest.mark.parametrize(
    "layers,stages,expected", [(8, 4, (0, 2, 4, 6, 8)), (5, 2, (0, 3, 5)), (2, 4, (0, 1, 2, 2, 2))]
)
def test_uniform_boundaries(layers, stages, expected):
    assert uniform_boundaries(layers, stages) == expected


@pytest.fixture(scope="module")
def deepspeed_methods():
    """DeepSpeed's own 'uniform' and 'parameters' partitioners (the real functions)."""
    import os

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    utils = pytest.importorskip("deepspeed.runtime.utils")
    return utils.partition_uniform, utils.partition_balanced


@settings(max_examples=200, deadline=None)
@given(
    layer_costs=st.lists(st.integers(1, 100), min_size=1, max_size=24),
    params=st.data(),
    stages=st.integers(1, 8),
    latency=st.sampled_from([0.0, 5.0, 50.0]),
)
def test_deepspeed_uniform_and_parameters_never_beat_ours(
    deepspeed_methods, layer_costs, params, stages, latency
):
    uniform, balanced = deepspeed_methods
    layers = len(layer_costs)
    param_counts = params.draw(st.lists(st.integers(1, 100), min_size=layers, max_size=layers))
    problem = simple(layer_costs, stages, link=Link(latency, 1.0))
    ours = partition(problem).bottleneck
    for bounds in (
        uniform(layers, stages),
        balanced(param_counts, stages),
        balanced(layer_costs, stages),
    ):
        assert ours <= max(stage_costs(problem, tuple(bounds))) * (1 + 1e-9)


def test_uneven_layers_deepspeed_loses_by_a_known_margin(deepspeed_methods):
    """A cheap layer with many parameters (an embedding), six blocks, then a costly layer with
    few parameters: 'uniform' counts layers, 'parameters' balances parameters, not time."""
    uniform, balanced = deepspeed_methods
    layer_costs = [1, 10, 10, 10, 10, 10, 10, 30]
    param_counts = [50, 10, 10, 10, 10, 10, 10, 5]
    problem = simple(layer_costs, stages=4)
    # (0, 3, 6, 7, 8) ties at 30 s and the same total; this one is more even (21, 20, 20, 30).
    assert partition(problem).boundaries == (0, 3, 5, 7, 8)
    assert partition(problem).bottleneck == 30.0
    assert max(stage_costs(problem, tuple(uniform(8, 4)))) == 40.0
    assert max(stage_costs(problem, tuple(balanced(param_counts, 4)))) == 50.0


def test_ties_go_to_the_least_total_time():
    """Four 1 s layers on 6 stages; token ids (0 bytes) in, hidden states (1 byte, 1 s a hop)
    after. The old pick ran every layer on its own stage (bottleneck 3 s, total 14 s); forwarding
    token ids through empty stages is free, so two stages of two layers do it in 6 s."""
    problem = PartitionProblem(
        (1.0,) * 4, (0.0, 1.0, 1.0, 1.0, 1.0), (0.0,) * 4, (Link(0.0, 1.0),) * 5, (math.inf,) * 6
    )
    old_pick = (0, 1, 2, 3, 4, 4, 4)
    assert max(stage_costs(problem, old_pick)) == 3.0 and sum(stage_costs(problem, old_pick)) == 14
    found = partition(problem)
    assert found.bottleneck == 3.0 and sum(found.stage_costs) == 6.0
    assert found.boundaries == (0, 0, 0, 0, 0, 2, 4)


def test_ties_of_equal_total_go_to_the_most_even():
    found = partition(simple([4, 1, 1, 1, 1], stages=3, link=Link(0.0, 1.0)))
    assert found.bottleneck == 4.0
    assert found.boundaries == (0, 1, 3, 5)  # 4, 2, 2 rather than 4, 3, 1 or 4, 1, 3


def test_exact_ties_spread_the_layers():
    """Four 2 ms layers on four stages, 2 ms hops: (4, 6, 6, 4) ms, one layer each, ties with
    an empty stage forwarding in the middle (4, 4, 6, 6) in total and in squares."""
    problem = PartitionProblem(
        (2.0,) * 4, (2.0,) * 5, (0.0,) * 4, (Link(0.0, 1.0),) * 3, (math.inf,) * 4
    )
    assert sum(stage_costs(problem, (0, 1, 1, 2, 4))) == 20.0
    assert partition(problem).boundaries == (0, 1, 2, 3, 4)


@pytest.mark.parametrize(
    "field,index,value,message",
    [
        ("layer_costs", 3, math.nan, "layer_costs[3] = nan: must be a finite number >= 0"),
        ("layer_costs", 0, -1.0, "layer_costs[0] = -1.0: must be a finite number >= 0"),
        ("boundary_bytes", 2, math.inf, "boundary_bytes[2] = inf: must be a finite number >= 0"),
        ("resident_bytes", 1, -math.inf, "resident_bytes[1] = -inf: must be a finite number >= 0"),
        ("capacity_bytes", 1, -1.0, "capacity_bytes[1] = -1.0: must be a number >= 0 or inf"),
        ("capacity_bytes", 0, math.nan, "capacity_bytes[0] = nan: must be a number >= 0 or inf"),
        ("layer_costs", 1, "1", "layer_costs[1] = '1': must be a finite number >= 0"),
    ],
)
def test_bad_numbers_are_refused_up_front(field, index, value, message):
    fields = {
        "layer_costs": [1.0] * 4,
        "boundary_bytes": [1.0] * 5,
        "resident_bytes": [1.0] * 4,
        "links": [FREE_LINK],
        "capacity_bytes": [10.0, 10.0],
    }
    fields[field][index] = value
    with pytest.raises(PartitionInputError) as error:
        PartitionProblem(**{name: tuple(values) for name, values in fields.items()})
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "link,message",
    [
        (Link(0.0, 0.0), "links[1].bytes_per_s = 0.0: must be a finite number > 0"),
        (Link(0.0, -5.0), "links[1].bytes_per_s = -5.0: must be a finite number > 0"),
        (Link(0.0, math.inf), "links[1].bytes_per_s = inf: must be a finite number > 0"),
        (Link(math.nan, 1.0), "links[1].latency_s = nan: must be a finite number >= 0"),
        (Link(-1.0, 1.0), "links[1].latency_s = -1.0: must be a finite number >= 0"),
    ],
)
def test_bad_links_are_refused(link, message):
    with pytest.raises(PartitionInputError, match=re.escape(message)):
        PartitionProblem((1.0,) * 3, (1.0,) * 4, (0.0,) * 3, (FREE_LINK, link), (1.0,) * 3)


@pytest.mark.parametrize(
    "sizes,message",
    [
        ((3, 3, 3, 1, 3), "boundary_bytes has 3 entries: 3 layers need 4 (both ends)"),
        ((3, 4, 2, 1, 3), "resident_bytes has 2 entries: 3 layers need 3"),
        ((3, 4, 3, 0, 3), "links has 0 entries: 3 stages need 2"),
        ((3, 4, 3, 0, 0), "capacity_bytes is empty: need at least one stage"),
    ],
)
def test_lengths_must_agree(sizes, message):
    costs, boundary, resident, links, stages = sizes
    with pytest.raises(PartitionInputError, match=re.escape(message)):
        PartitionProblem(
            (1.0,) * costs,
            (1.0,) * boundary,
            (1.0,) * resident,
            (FREE_LINK,) * links,
            (1.0,) * stages,
        )


def test_unlimited_capacity_is_allowed():
    assert partition(simple([1, 2, 3], stages=2, capacity=math.inf)).boundaries == (0, 2, 3)


def test_partition_costs_is_partition_on_a_plain_list():
    costs, memory = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], [2.0, 1.0, 3.0, 1.0, 2.0, 4.0, 1, 2]
    link = Link(0.5, 10.0)
    found = partition_costs(costs, 3, memory=memory, capacity=8.0, activation_bytes=4.0, link=link)
    problem = PartitionProblem(tuple(costs), (4.0,) * 9, tuple(memory), (link, link), (8.0,) * 3)
    assert found == partition(problem).boundaries
    assert partition_costs([1, 1, 1, 4], 2) == (0, 3, 4)
    assert partition_costs([1, 1, 1, 4], 2, memory=[2, 1, 1, 1], capacity=3) == (0, 2, 4)


def test_partition_costs_refuses_what_does_not_fit():
    with pytest.raises(CapacityError, match="layer 1 .* does not fit any stage alone"):
        partition_costs([1, 1], 2, memory=[1, 5 * 2**30], capacity=4 * 2**30)
    with pytest.raises(PartitionInputError, match=r"layer_costs\[1\] = nan"):
        partition_costs([1, math.nan], 2)


def scale_problem(layers: int, stages: int, differing: bool) -> PartitionProblem:
    """Random per-layer costs; with `differing`, per-boundary sizes, token ids in, logits out."""
    rng = random.Random(0)
    sizes = [16e6 * (rng.uniform(0.5, 1.5) if differing else 1) for _ in range(layers + 1)]
    if differing:
        sizes[0], sizes[-1] = 16e3, 2e9
    return PartitionProblem(
        tuple(rng.uniform(0.9e-3, 1.1e-3) for _ in range(layers)),
        tuple(sizes),
        (1e8,) * layers,
        tuple(Link(5e-6, 450e9 if (s + 1) % 8 else 50e9) for s in range(stages - 1)),
        (80e9,) * stages,
    )


@pytest.mark.parametrize("layers,stages", [(1000, 1024), (10000, 64)])
def test_differing_sizes_at_scale_place_every_layer_within_the_reported_bottleneck(layers, stages):
    """The sizes benchmarks/plan_scale.py times (speed is the benchmark's, not this test's)."""
    problem = scale_problem(layers, stages, differing=True)
    found = partition(problem)
    assert found.boundaries[0] == 0 and found.boundaries[-1] == layers
    assert fits_capacity(problem, found.boundaries)
    assert found.stage_costs == stage_costs(problem, found.boundaries)
    assert found.bottleneck == max(found.stage_costs) >= max(problem.layer_costs)


def test_past_the_work_limit_the_tie_break_keeps_the_search_pick(monkeypatch):
    problem = scale_problem(200, 64, differing=True)
    tied = partition(problem)
    monkeypatch.setattr("layerwise.partition.ties.TIE_WORK_LIMIT", 0)
    kept = partition(problem)
    assert kept.bottleneck == tied.bottleneck
    assert sum(kept.stage_costs) > sum(tied.stage_costs)  # the tie-break did choose


def test_the_final_check_finds_an_optimum_closer_than_the_bisection_tolerance():
    """Two placements 6.5e-8 apart (relative), inside the bisection's 1e-6 stopping width: the
    search stopped there keeps 1.5424837683933659; the final probe at high x (1 - 1e-9) must
    find the optimum, 1.5424836683933658 (found by a search of random problems with that probe
    removed)."""
    problem = PartitionProblem(
        layer_costs=(1.4424836663933658, 1.4424842433867746, 1.4439260056671583),
        boundary_bytes=(0.0, 2.0, 0.0, 1.0),
        resident_bytes=(0.0, 0.0, 0.0),
        links=(Link(0.1, 1e9), Link(1e-7, 1e9), Link(1e-7, 1.0)),
        capacity_bytes=(math.inf,) * 4,
    )
    optimum, stopped_early = 1.5424836683933658, 1.5424837683933659
    assert 1e-9 < (stopped_early - optimum) / optimum < 1e-6
    assert brute_force(problem) == pytest.approx(optimum, rel=1e-15)
    assert partition(problem).bottleneck == pytest.approx(optimum, rel=1e-15)
