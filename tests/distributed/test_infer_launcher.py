"""launch/infer.py end to end on CPU ranks: the deepspeed launcher running the megatron-core
baseline of mock-llama with --verify (prefill and KV-cache decode), a world size that does not
match the config, and a rank that crashes."""

import json
import os
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, deepspeed_launcher, launch


def test_deepspeed_launcher_runs_mock_llama_baseline_with_verify(tmp_path):
    results = tmp_path / "results.json"
    done = launch(
        deepspeed_launcher(4, 29641),
        "launch/infer.py",
        "--config",
        "configs/mock_llama_baseline.json",
        "--verify",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "baseline run of configs/mock_llama_baseline.json" in done.stdout
    assert "TP=2 x PP=2 (megatron-core)" in done.stdout
    assert "PREDICTED" in done.stdout and "MEASURED" in done.stdout
    assert "decode TPS (tokens/s)" in done.stdout and "TPOT (ms, decode step)" in done.stdout
    assert "verify: 1 prefill chunk(s) and 8 decode step(s)" in done.stdout
    assert "greedy tokens equal (" in done.stdout and ": ok" in done.stdout
    data = json.loads(results.read_text())
    assert data["mode"] == "baseline" and data["world_size"] == 4 and data["ok"]
    measured = data["measured"]
    assert data["predicted"]["tps"] > 0 and measured["tps"] > 0
    # 2 timed runs of each (after 1 warm-up): a prefill batch; 8 decode steps, per step
    assert len(measured["prefill_s"]) == 2 and len(measured["decode_s"]) == 2
    assert measured["tpot_ms"] > 0 and measured["decode_tps"] == 8 / measured["tpot_ms"] * 1e3
    assert data["verify"]["ok"] and data["verify"]["relative_error"] <= 1e-4
    assert data["verify"]["decode_steps"] == 8 and data["verify"]["greedy_match"] is True
    assert oct(results.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_world_size_mismatch_under_a_launcher_is_reported_once():
    """Every rank finds the mismatch; rank 0 alone says so, the others exit 2 quietly."""
    done = launch(
        deepspeed_launcher(2, 29651),
        "launch/infer.py",
        "--config",
        "configs/mock_dense_layerwise.json",
        timeout=120,
    )
    assert done.returncode == 2
    message = "hardware.gpus = 4, but the launcher started 2 ranks (WORLD_SIZE)"
    assert done.stderr.count(message) == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "config, crash_at",
    [("mock_gpt_baseline", "prefill"), ("mock_dense_layerwise", "build")],
)
def test_a_crashing_rank_ends_every_rank_non_zero(config, crash_at, tmp_path):
    """Four plain processes, no launcher to stop the survivors: each must end on its own, with
    a non-zero code, within a minute. Peers blocked on the dead rank in a collective fail at
    once; peers waiting for it to join a process group DeepSpeed creates fail after
    run.timeout_s."""
    data = json.loads((ROOT / f"configs/{config}.json").read_text())
    data["run"]["timeout_s"] = 15
    data["hardware"]["profile"] = str(ROOT / "plugin/layerwise/hardware/profiles/cpu-mock.yaml")
    path = tmp_path / "crash.json"
    path.write_text(json.dumps(data))
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "DS_ACCELERATOR": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONWARNINGS": "ignore",
        "CRASH_AT": crash_at,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(29661 + len(crash_at) + len(config)),
        "WORLD_SIZE": "4",
    }
    start = time.monotonic()
    ranks = [
        subprocess.Popen(
            [sys.executable, "tests/distributed/crash.py", "--config", str(path)],
            cwd=ROOT,
            env={**environment, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(4)
    ]
    outcomes = []
    for process in ranks:
        try:
            _, err = process.communicate(timeout=max(1.0, 90 - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            for other in ranks:
                other.kill()
            pytest.fail(
                f"a rank was still running {time.monotonic() - start:.0f} s after the crash"
            )
        outcomes.append((process.returncode, err))
    elapsed = time.monotonic() - start
    assert all(code != 0 for code, _ in outcomes), [code for code, _ in outcomes]
    assert "injected failure on rank 1" in outcomes[1][1]
    assert elapsed < 60, elapsed
