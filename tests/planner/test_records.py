"""The planner's records are built by keyword: a positional call fails."""

import dataclasses

import pytest

from layerwise.costmodel.kernels import Chunk
from layerwise.planner.grid import layerwise_grid
from layerwise.planner.inputs import PlanInputs
from layerwise.planner.records import Layout, Plan, StagePlan
from layerwise.planner.setting import Setting

RECORDS = (StagePlan, Layout, Plan, Setting, PlanInputs)


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: record.__name__)
def test_records_are_frozen_and_keyword_only(record):
    fields = dataclasses.fields(record)
    assert all(field.kw_only for field in fields)
    assert record.__dataclass_params__.frozen
    with pytest.raises(TypeError):
        record(*range(len(fields)))


def test_a_record_by_keyword_reads_as_its_fields():
    grid = layerwise_grid(2, 4)
    setting = Setting(
        mode="layerwise", tp=1, replicas=2, grid=grid, sequences=8, decode_micro_batches="auto"
    )
    assert setting.num_stages == 4 and setting.stage_ranks == ((0,), (1,), (2,), (3,))
    chunk = Chunk(tokens=8, sequences=8, context=1024, decode=True)
    assert dataclasses.replace(chunk, decode=False).tokens == 8
