"""The one rank -> (replica, stage, tensor rank) mapping, and its agreement with DeepSpeed's
ProcessTopology (handed to the engine) and megatron-core's RankGenerator (Megatron's order)."""

import itertools

import pytest

from layerwise.planner.grid import Place, RankGrid, layerwise_grid, megatron_grid

SHAPES = [(tp, pp) for tp, pp in itertools.product((1, 2, 4, 8), (1, 2, 4)) if tp * pp <= 16]


def test_megatron_order_puts_tensor_ranks_side_by_side():
    grid = megatron_grid(tensor_parallel=4, pipeline_parallel=2)
    assert [grid.place(rank) for rank in (0, 3, 4, 7)] == [
        Place(0, 0, 0),
        Place(0, 0, 3),
        Place(0, 1, 0),
        Place(0, 1, 3),
    ]
    assert grid.groups("model") == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert grid.groups("pipe") == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_layerwise_replicas_fill_consecutive_ranks():
    grid = layerwise_grid(replicas=2, stages=3)
    assert [grid.place(rank) for rank in range(6)] == [
        Place(r, s, 0) for r in range(2) for s in range(3)
    ]
    assert grid.groups("pipe") == [[0, 1, 2], [3, 4, 5]]
    assert grid.groups("model") == [[rank] for rank in range(6)]  # no tensor axis


@pytest.mark.parametrize("tp, pp", SHAPES)
def test_rank_and_coord_are_inverse(tp, pp):
    grid = megatron_grid(tp, pp)
    assert [grid.rank(**grid.coord(rank)) for rank in range(grid.size)] == list(range(tp * pp))


def test_bad_grids_and_ranks_are_refused():
    with pytest.raises(ValueError, match="distinct names"):
        RankGrid(("pipe", "pipe"), (2, 2))
    with pytest.raises(ValueError, match="one size >= 1 per axis"):
        RankGrid(("pipe",), (0,))
    with pytest.raises(ValueError, match="rank 4 is outside a grid of 4 ranks"):
        layerwise_grid(2, 2).coord(4)


@pytest.mark.parametrize("tp, pp", SHAPES)
def test_deepspeed_process_topology_agrees(tp, pp):
    from deepspeed.runtime.pipe.topology import ProcessTopology

    for grid in (megatron_grid(tp, pp), layerwise_grid(tp, pp)):
        topology = ProcessTopology(axes=list(grid.axes), dims=list(grid.dims))
        for rank in range(grid.size):
            assert topology.get_coord(rank)._asdict() == grid.coord(rank)
        for axis in grid.axes:
            if grid.dim(axis) > 1:
                assert topology.get_axis_comm_lists(axis) == grid.groups(axis)


@pytest.mark.parametrize("tp, pp", SHAPES)
def test_megatron_rank_generator_agrees(tp, pp):
    from megatron.core.parallel_state import RankGenerator

    megatron = RankGenerator(tp=tp, ep=1, dp=1, pp=pp, cp=1, order="tp-cp-ep-dp-pp")
    grid = megatron_grid(tp, pp)
    assert megatron.get_ranks("tp") == grid.groups("model")
    assert megatron.get_ranks("pp") == grid.groups("pipe")
