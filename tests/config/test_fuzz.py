"""Fuzzed configs and hardware profiles through `layerwise-plan`: the shipped configs and the
cpu-mock profile mutated (keys dropped, values replaced by other JSON values: wrong types, NaN,
infinities, huge and negative numbers, deep nesting, unknown keys, odd profile names), each run
as a user runs it. The property: exit 0, or exit 2 with exactly one `error:` message; never a
traceback or another exit code, and no input takes more than a few seconds. FUZZ_EXAMPLES sets
how many of each (default 150 in the suite)."""

import contextlib
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerwise.cli import plan
from tests.conftest import CONFIGS, PROFILES

SHIPPED = sorted(CONFIGS.glob("mock_*.json")) + sorted(CONFIGS.glob("seed_*.json"))
BASES = [json.loads(path.read_text()) for path in SHIPPED]
PROFILE = yaml.safe_load((PROFILES / "cpu-mock.yaml").read_text())
DENSE = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
SLOWEST_S = 5.0

odd_numbers = st.sampled_from(
    [math.nan, math.inf, -math.inf, 0, -1, 10**30, 2**63, 1e300, -1e-300, 0.5, 3, 10**9]
)
odd_strings = st.sampled_from(
    ["", "auto", "x" * 300, "../../etc/passwd", "/dev/zero", "caf\u00e9", "h200", "1e9"]
)
leaves = st.one_of(st.none(), st.booleans(), odd_numbers, odd_strings, st.integers(-5, 40))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths_of(data, prefix=()):
    """Every (path of keys) to a value in nested dicts, the dicts themselves included."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, (*prefix, key))


@st.composite
def mutated(draw, bases):
    """One of `bases` (JSON-like data) with one to four keys dropped, replaced or added."""
    data = json.loads(json.dumps(draw(st.sampled_from(bases))))
    for _ in range(draw(st.integers(1, 4))):
        targets = [path for path in paths_of(data) if path]
        path = draw(st.sampled_from(targets))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "drop", "add", "deep"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "add":
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif action == "deep":
            nested = draw(values)
            for _ in range(draw(st.integers(50, 400))):
                nested = [nested]
            parent[path[-1]] = nested
        else:
            parent[path[-1]] = draw(values)
        if not isinstance(data, dict):
            break
    return data


def mutated_configs():
    return mutated(BASES)


def plan_exit(data, profile=None) -> tuple[int, str, float]:
    """`layerwise-plan --config F` on `data` written as JSON (its hardware profile `profile`,
    written as YAML, when given): (exit code, stderr, seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        if profile is not None:
            (Path(folder) / "profile.yaml").write_text(yaml.safe_dump(profile))
            data["hardware"]["profile"] = "profile.yaml"
        path.write_text(json.dumps(data))
        err, out = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = plan.main(["--config", str(path)])
            except SystemExit as stop:
                code = stop.code
        return code, err.getvalue(), time.perf_counter() - start


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_configs())
def test_a_fuzzed_config_exits_0_or_2_with_one_message_quickly(data):
    check(*plan_exit(data), data)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated([PROFILE]))
def test_a_fuzzed_hardware_profile_exits_0_or_2_with_one_message_quickly(profile):
    data = json.loads(json.dumps(DENSE))
    check(*plan_exit(data, profile), profile)


def check(code: int, err: str, seconds: float, data) -> None:
    assert code in (0, 2), (code, err[-2000:])
    if code == 2:
        assert err.startswith("error: ") and err.count("error:") == 1, err[-2000:]
    assert "Traceback" not in err
    assert seconds < SLOWEST_S, (seconds, json.dumps(data)[:500])
