"""The planner tests' shared fixture: the hand-computable plan (plans.round_plan)."""

import pytest

from tests.planner import plans


@pytest.fixture
def round_plan(tmp_path):
    return plans.round_plan(tmp_path)
