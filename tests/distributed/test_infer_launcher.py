"""launch/infer.py end to end: the deepspeed launcher on 4 CPU ranks with --verify, a world size
that does not match the config, and a rank that crashes."""

import json
import time

from layerwise.runtime.launcher import main

from .conftest import ROOT, deepspeed_launcher, launch, torchrun


def test_deepspeed_launcher_runs_mock_dense_with_verify(tmp_path):
    results = tmp_path / "results.json"
    done = launch(
        deepspeed_launcher(4, 29641),
        "launch/infer.py",
        "--config",
        "configs/mock_dense_layerwise.json",
        "--verify",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "PREDICTED" in done.stdout and "MEASURED" in done.stdout
    assert "verify: 2 chunk(s) vs one process" in done.stdout and ": ok" in done.stdout
    data = json.loads(results.read_text())
    assert data["mode"] == "layerwise" and data["world_size"] == 4
    for side in ("predicted", "measured"):
        assert data[side]["tps"] > 0 and data[side]["tpot_ms"] > 0
    assert data["verify"]["ok"] and data["verify"]["relative_error"] <= 1e-4


def test_world_size_mismatch_exits_2_without_starting(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    results = tmp_path / "results.json"
    code = main(
        ["--config", str(ROOT / "configs/mock_dense_layerwise.json"), "--results", str(results)]
    )
    assert code == 2 and not results.exists()
    err = capsys.readouterr().err
    assert "error (rank 1)" in err
    assert "hardware.gpus = 4, but the launcher started 2 ranks (WORLD_SIZE)" in err


def test_world_size_mismatch_under_a_launcher_fails_cleanly():
    """Each rank exits 2 on its own (the test above); the deepspeed launcher passes the code on
    and stops the others as soon as the first one exits, so only the fastest rank's message is
    certain to be printed."""
    done = launch(
        deepspeed_launcher(2, 29651),
        "launch/infer.py",
        "--config",
        "configs/mock_dense_layerwise.json",
        timeout=120,
    )
    assert done.returncode == 2
    assert "but the launcher started 2 ranks (WORLD_SIZE)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_crashing_rank_fails_the_run_in_bounded_time(tmp_path):
    config = json.loads((ROOT / "configs/mock_dense_layerwise.json").read_text())
    config["hardware"]["gpus"] = 2
    config["baseline"] = {"tensor_parallel": 1, "pipeline_parallel": 2}
    config["run"]["timeout_s"] = 30
    path = tmp_path / "two.json"
    path.write_text(json.dumps(config))
    hardware = ROOT / "configs/hardware/cpu-mock.yaml"
    path.write_text(
        json.dumps({**config, "hardware": {**config["hardware"], "profile": str(hardware)}})
    )
    results = tmp_path / "results.json"
    start = time.monotonic()
    done = launch(
        torchrun(2, 29661),
        "tests/distributed/crash.py",
        "--config",
        str(path),
        "--results",
        str(results),
        timeout=180,
    )
    assert done.returncode != 0
    assert "injected failure on rank 1" in done.stderr
    assert time.monotonic() - start < 150
    assert not results.exists()
