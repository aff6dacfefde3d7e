"""launch/tune.py end to end on 4 CPU ranks, and run_quietly's runs ending with it: a run past
its timeout leaves no rank behind."""

import json
import sys
import threading
import time

import psutil
import pytest

from layerwise.cli.common import plan_for_run, run_quietly
from layerwise.config.load import parse_config
from layerwise.errors import RunFailedError
from layerwise.tune.candidates import candidate_name

from .conftest import ROOT, launch


def test_tune_runs_the_two_best_predicted_layouts_and_writes_the_winner(tmp_path):
    out = tmp_path / "best.json"
    done = launch(
        [sys.executable],
        "launch/tune.py",
        *("--config", "configs/mock_dense_layerwise.json", "--top", "2", "--repeats", "1"),
        *("--out", str(out), "--results-dir", str(tmp_path)),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "tune.json").read_text())
    rows = summary["rows"]
    # the two best predicted, then the control: layer-wise 1x4 forced to an even split
    assert [row["name"] for row in rows] == [
        "baseline TP1xPP4",
        "layerwise 4x1",
        "layerwise 1x4 even",
    ]
    assert all(row["error"] == "" and len(row["runs"]) == 1 for row in rows)
    assert sorted(row["measured_rank"] for row in rows) == [1, 2, 3]
    even = json.loads((tmp_path / "layerwise-1x4-even.r1.results.json").read_text())
    assert "layers [2, 2, 2, 2]" in even["layout"]
    for row in rows:  # what the run predicted is what the candidate predicted
        stem = row["name"].replace(" ", "-")
        results = json.loads((tmp_path / f"{stem}.r1.results.json").read_text())
        assert results["predicted"]["tps"] == pytest.approx(row["predicted"]["tps"])
        assert results["measured"]["tps"] == row["median"]
    config = parse_config(json.loads(out.read_text()), "best")
    layout = plan_for_run(config).layout(config.mode)
    assert candidate_name(layout) == summary["winner"]
    assert "winner: " + summary["winner"] in done.stdout
    assert "Kendall tau, predicted vs measured order: " in done.stdout


def processes_naming(text: str) -> list[psutil.Process]:
    """The running processes whose command line mentions `text`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if text in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_a_run_past_its_timeout_leaves_no_rank_behind(tmp_path):
    data = json.loads((ROOT / "configs/mock_dense_layerwise.json").read_text())
    data["run"]["timed_iters"] = 100_000  # never done in time, however fast the machine
    config_path = str(tmp_path / "slow.json")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            run_quietly(data, tmp_path, "slow", timeout_s=12.0)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    seen: set[int] = set()
    deadline = time.monotonic() + 11.0
    while time.monotonic() < deadline and len(seen) < 5:  # torchrun and its 4 workers
        seen |= {process.pid for process in processes_naming(config_path)}
        time.sleep(0.1)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(seen) >= 5, f"saw {len(seen)} processes of the run before its timeout"
    (error,) = failure
    assert isinstance(error, RunFailedError) and error.exit_code is None
    assert "did not finish in 12 s; every process of it was killed" in str(error)
    assert processes_naming(config_path) == []
