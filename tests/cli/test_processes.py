"""cli/processes.py: a launched tree ends with its parent on a timeout, an exception, Ctrl-C and
SIGTERM, including a descendant that left its group (as torchrun's workers do), and the
parent's own group survives. The tree is a stand-in for a launcher: a process that starts one
child in its own session and one in its group, writes their pids and sleeps."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from layerwise.cli.processes import ended_on_exit, run_captured
from tests.conftest import ROOT

LAUNCHER = textwrap.dedent(
    """
    import subprocess, sys, time
    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    away = subprocess.Popen(sleep, start_new_session=True)  # left the group, like a worker
    near = subprocess.Popen(sleep)
    open(sys.argv[1], "w").write(f"{away.pid} {near.pid}")
    time.sleep(120)
    """
)


def launcher(pids: Path) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(pids)]


def started(pids: Path, timeout_s: float = 30.0) -> list[int]:
    """The pids the launcher wrote, once it has."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = pids.read_text() if pids.exists() else ""
        if len(text.split()) == 2:
            return [int(pid) for pid in text.split()]
        time.sleep(0.05)
    raise AssertionError(f"the launcher wrote no pids to {pids} in {timeout_s} s")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: list[int], within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


def test_the_stand_in_leaves_a_worker_behind_when_only_its_launcher_is_killed(tmp_path):
    """The tests below can fail: killing the launcher alone leaves its session's worker."""
    process = subprocess.Popen(launcher(tmp_path / "pids"))
    away, near = started(tmp_path / "pids")
    process.kill()
    process.wait()
    try:
        assert alive(away) and alive(near)
    finally:
        for pid in (away, near):
            os.kill(pid, signal.SIGKILL)


def test_a_timeout_kills_the_whole_tree(tmp_path):
    pids = tmp_path / "pids"
    with pytest.raises(subprocess.TimeoutExpired):
        run_captured(launcher(pids), timeout_s=3.0)
    assert gone(started(pids, timeout_s=0.1))
    assert psutil.Process().children(recursive=True) == []


def test_an_exception_around_a_started_launcher_kills_its_tree_and_spares_our_group(tmp_path):
    pids = tmp_path / "pids"
    process = subprocess.Popen(launcher(pids))  # in our group, as compare.py starts it
    with pytest.raises(RuntimeError, match="stop"):
        with ended_on_exit(process):
            started(pids)
            raise RuntimeError("stop")
    assert gone(started(pids)) and process.returncode is not None


RUNNER = textwrap.dedent(
    """
    import sys
    from layerwise.cli.processes import run_captured
    run_captured([sys.executable, "-c", sys.argv[1], sys.argv[2]], timeout_s=120)
    """
)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, None)])
def test_sigterm_or_ctrl_c_to_the_runner_kills_every_process_it_started(tmp_path, signum, code):
    pids = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugin")}
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, LAUNCHER, str(pids)], env=env, stderr=subprocess.PIPE
    )
    started_pids = started(pids)
    runner.send_signal(signum)
    _, stderr = runner.communicate(timeout=30)
    assert gone(started_pids), stderr.decode()[-2000:]
    if code is not None:
        assert runner.returncode == code, stderr.decode()[-2000:]
    else:
        assert b"KeyboardInterrupt" in stderr


def test_a_run_that_fails_after_its_results_were_written_marks_them_failed(tmp_path, monkeypatch):
    """Rank 0 wrote "ok": true, then a rank died and the launcher exited 247: run_quietly's
    error names the run, and the results file no longer says ok."""
    import json
    import subprocess

    from layerwise.cli import common
    from layerwise.errors import RunFailedError

    results = tmp_path / "late.results.json"

    def finished_then_died(command, timeout_s):
        results.write_text(json.dumps({"ok": True, "measured": {"tps": 1.0}}))
        return subprocess.CompletedProcess(command, 247, "", "a rank was killed")

    monkeypatch.setattr(common, "run_captured", finished_then_died)
    with pytest.raises(RunFailedError, match="exit 247"):
        common.run_quietly({"hardware": {"gpus": 2}}, tmp_path, "late", timeout_s=10)
    written = json.loads(results.read_text())
    assert written["ok"] is False and written["launcher_exit_code"] == 247
    assert written["measured"] == {"tps": 1.0}  # the figures are kept, marked
