"""One RankAssignment per rank: places from the grid, layers that tile the model, batch shares
that tile the batch, on both layouts of real plans."""

import json

import pytest

from layerwise.config.load import parse_config
from layerwise.planner.assignment import RankAssignment, assign, output_rank
from layerwise.planner.plan import make_plan
from tests.conftest import CONFIGS

CASES = {
    "mock_gpt_layerwise, 2 replicas": ("mock_gpt_layerwise", {"replicas": 2}),
    "mock_dense_baseline": ("mock_dense_baseline", {}),
    "mock_llama_baseline": ("mock_llama_baseline", {}),
    "mock_dense_layerwise, 4 replicas": ("mock_dense_layerwise", {"replicas": 4}),
    "seed_dense_layerwise, auto replicas": ("seed_dense_layerwise", {"replicas": "auto"}),
    "seed_gpt_baseline": ("seed_gpt_baseline", {}),
}


def config_of(name: str, layerwise: dict):
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    data["layerwise"].update(layerwise)
    return parse_config(data, name, CONFIGS)


def planned() -> list:
    """(case, config, layout) for both layouts of every case that has one."""
    found = []
    for case, (name, layerwise) in CASES.items():
        config = config_of(name, layerwise)
        plan = make_plan(config)
        found += [
            pytest.param(config, layout, id=f"{case}/{layout.mode}")
            for layout in (plan.baseline, plan.layerwise)
            if layout is not None
        ]
    return found


PLANNED = planned()


def every_rank(config, layout) -> list[RankAssignment]:
    return [assign(config, layout, rank) for rank in range(layout.grid.size)]


def test_the_cases_cover_replicas_tensor_ranks_and_stages_without_layers():
    layouts = [param.values[1] for param in PLANNED]
    assert len(layouts) == 2 * len(CASES)
    assert max(layout.replicas for layout in layouts) == 16
    assert max(layout.grid.dim("model") for layout in layouts) == 8
    assert any(stage.num_layers == 0 for layout in layouts for stage in layout.stages)
    assert any(len(layout.stages) == 1 for layout in layouts)


@pytest.mark.parametrize("config, layout", PLANNED)
def test_each_rank_sits_where_the_grid_puts_it(config, layout):
    for found in every_rank(config, layout):
        coord = layout.grid.coord(found.rank)
        assert (found.replica, found.stage, found.tensor_rank) == (
            coord.get("data", 0),
            coord.get("pipe", 0),
            coord.get("model", 0),
        )
        assert layout.grid.rank(data=found.replica, pipe=found.stage, model=found.tensor_rank) == (
            found.rank
        )
        assert found.is_first_stage == (found.stage == 0)
        assert found.is_last_stage == (found.stage == layout.grid.dim("pipe") - 1)


@pytest.mark.parametrize("config, layout", PLANNED)
def test_the_stages_of_each_pipeline_tile_the_model(config, layout):
    pipelines: dict[tuple[int, int], list[RankAssignment]] = {}
    for found in every_rank(config, layout):
        pipelines.setdefault((found.replica, found.tensor_rank), []).append(found)
    assert len(pipelines) == layout.replicas * layout.grid.dim("model")
    for stages in pipelines.values():
        stages.sort(key=lambda found: found.stage)
        assert [found.stage for found in stages] == list(range(len(layout.stages)))
        bounds = [stages[0].first_layer] + [found.stop_layer for found in stages]
        assert bounds[0] == 0 and bounds[-1] == config.model.pipeline_layers
        assert [found.first_layer for found in stages[1:]] == bounds[1:-1]
        assert [(found.first_layer, found.stop_layer) for found in stages] == [
            (stage.first_layer, stage.stop_layer) for stage in layout.stages
        ]


@pytest.mark.parametrize("config, layout", PLANNED)
def test_the_replicas_split_the_batch_into_disjoint_blocks(config, layout):
    batch, found = config.workload.batch_size, every_rank(config, layout)
    blocks = {a.replica: range(a.first_sequence, a.first_sequence + a.sequences) for a in found}
    assert len(blocks) == layout.replicas
    assert {a.sequences for a in found} == {batch // layout.replicas}
    assert found[0].sequences * layout.replicas == batch
    covered = sorted(sequence for block in blocks.values() for sequence in block)
    assert covered == list(range(batch))  # every sequence once: disjoint and complete
    for a in found:  # every rank of a replica reads the same block
        assert blocks[a.replica] == range(a.first_sequence, a.first_sequence + a.sequences)


@pytest.mark.parametrize("config, layout", PLANNED)
def test_chunks_and_decode_micro_batches_cover_the_replicas_sequences(config, layout):
    seq_len = config.workload.seq_len
    for a in every_rank(config, layout):
        assert a.decode_rows * a.decode_micro_batches == a.sequences
        assert a.decode_micro_batches == layout.decode_micro_batches
        assert a.decode_streamed == layout.decode_streamed
        if config.model.kind == "dense":
            assert a.micro_batches * a.chunk_tokens == a.sequences * seq_len
        else:
            assert a.micro_batches * a.micro_batch_rows == a.sequences
        assert a.cache_length == seq_len + config.workload.decode_steps


def test_two_replicas_of_two_stages_by_hand():
    config = config_of("mock_gpt_layerwise", {"replicas": 2, "decode_micro_batches": 2})
    layout = make_plan(config).layerwise
    assert (layout.micro_batches, layout.decode_micro_batches) == (1, 2)
    assert assign(config, layout, 2) == RankAssignment(
        rank=2,
        replica=1,
        stage=0,
        tensor_rank=0,
        first_layer=0,
        stop_layer=4,
        is_first_stage=True,
        is_last_stage=False,
        sequences=4,
        first_sequence=4,
        micro_batches=1,
        micro_batch_rows=4,
        chunk_tokens=128,
        decode_micro_batches=2,
        decode_rows=2,
        decode_streamed=True,
        seq_len=32,
        decode_steps=4,
        cache_length=36,
        dtype="fp32",
        seed=1234,
    )
    last = assign(config, layout, 1)
    assert (last.replica, last.stage, last.first_layer, last.stop_layer) == (0, 1, 4, 8)
    assert (last.is_first_stage, last.is_last_stage, last.first_sequence) == (False, True, 0)
    assert (output_rank(layout), output_rank(layout, replica=1)) == (1, 3)


def test_tensor_ranks_of_a_megatron_stage_share_its_layers():
    config = config_of("mock_dense_baseline", {})
    layout = make_plan(config).baseline
    found = [assign(config, layout, rank) for rank in range(4)]
    assert [(a.stage, a.tensor_rank) for a in found] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [(a.first_layer, a.stop_layer) for a in found] == [(0, 4), (0, 4), (4, 8), (4, 8)]
    assert output_rank(layout) == 2


def test_a_rank_outside_the_grid_is_refused():
    config = config_of("mock_gpt_layerwise", {})
    layout = make_plan(config).layerwise
    with pytest.raises(ValueError, match="rank 4 is outside a grid of 4 ranks"):
        assign(config, layout, 4)
    with pytest.raises(TypeError):
        RankAssignment(0, 0, 0)  # keyword-only: positions cannot be swapped by mistake
