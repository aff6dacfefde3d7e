"""The partitioner is optimal (against brute force), respects capacity and is deterministic."""

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerwise.errors import CapacityError
from layerwise.partition import (
    Link,
    PartitionProblem,
    fits_capacity,
    partition,
    stage_costs,
    uniform_boundaries,
)


def brute_force(problem: PartitionProblem) -> float:
    """Smallest bottleneck over every contiguous placement (empty stages allowed) that fits."""
    best = math.inf
    layers, stages = problem.num_layers, problem.num_stages
    for cuts in itertools.combinations_with_replacement(range(layers + 1), stages - 1):
        bounds = (0, *cuts, layers)
        if fits_capacity(problem, bounds):
            best = min(best, max(stage_costs(problem, bounds)))
    return best


costs = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@st.composite
def problems(draw, uniform_bytes: bool):
    layers = draw(st.integers(1, 7))
    stages = draw(st.integers(1, 4))
    if uniform_bytes:
        boundary = (draw(st.integers(0, 5)),) * (layers + 1)
    else:
        boundary = tuple(
            draw(st.lists(st.integers(0, 9), min_size=layers + 1, max_size=layers + 1))
        )
    links = tuple(
        Link(draw(st.floats(0.0, 2.0)), draw(st.sampled_from([1.0, 2.0, 8.0])))
        for _ in range(stages - 1)
    )
    resident = tuple(draw(st.lists(st.integers(0, 5), min_size=layers, max_size=layers)))
    capacity = tuple(draw(st.lists(st.integers(3, 20), min_size=stages, max_size=stages)))
    layer_costs = tuple(draw(st.lists(costs, min_size=layers, max_size=layers)))
    return PartitionProblem(
        layer_costs, boundary, tuple(map(float, resident)), links, tuple(map(float, capacity))
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


@settings(max_examples=300, deadline=None)
@given(problems(uniform_bytes=True))
def test_greedy_probe_matches_brute_force(problem):
    check_optimal(problem)


@settings(max_examples=300, deadline=None)
@given(problems(uniform_bytes=False))
def test_window_probe_matches_brute_force(problem):
    check_optimal(problem)


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
    assert partition(problem).boundaries == (0, 3, 6, 7, 8)
    assert partition(problem).bottleneck == 30.0
    assert max(stage_costs(problem, tuple(uniform(8, 4)))) == 40.0
    assert max(stage_costs(problem, tuple(balanced(param_counts, 4)))) == 50.0
