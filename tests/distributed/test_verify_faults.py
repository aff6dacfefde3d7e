"""--verify shown a wrong answer: launch/infer.py on 2 CPU ranks with a deliberate bug in the
layout's computation (tests/distributed/faults.py) must exit 3, print the failed verdict and
write results marked failed; the same run without a bug passes, so the verdict is the bug's."""

import json

import pytest

from layerwise.cli.common import free_port
from layerwise.errors import ExitCode
from layerwise.runtime.verify import TOLERANCE

from .conftest import ROOT, deepspeed_launcher, launch

BASELINE_TP2 = {"tensor_parallel": 2, "pipeline_parallel": 1, "micro_batches": "auto"}
CASES = [
    # fault, config on 2 ranks: a wrong TP shard (megatron baseline, TP 2), a perturbed layer
    # (DeepSpeed layer-wise, 2 stages), a KV cache one position off in decode only (both)
    ("tp_shard", "mock_llama_baseline"),
    ("layer", "mock_gpt_layerwise"),
    ("kv_position", "mock_gpt_layerwise"),
    ("kv_position", "mock_llama_baseline"),
]


def run_with(tmp_path, fault: str, stem: str):
    """launch/infer.py --verify on 2 ranks with `fault`: (the launch, the results JSON)."""
    data = json.loads((ROOT / "configs" / f"{stem}.json").read_text())
    data["hardware"]["gpus"] = 2
    data["baseline"] = BASELINE_TP2
    data["layerwise"]["replicas"] = 1
    data["run"].update(warmup_iters=0, timed_iters=1)
    config, results = tmp_path / "config.json", tmp_path / "results.json"
    config.write_text(json.dumps(data))
    done = launch(
        deepspeed_launcher(2, free_port()),  # it exits with the ranks' code
        "tests/distributed/faults.py",
        "--config",
        str(config),
        "--verify",
        "--results",
        str(results),
        env={"FAULT": fault},
    )
    return done, json.loads(results.read_text()) if results.exists() else None


@pytest.mark.parametrize("stem", ["mock_llama_baseline", "mock_gpt_layerwise"])
def test_the_same_runs_without_a_bug_pass(tmp_path, stem):
    done, verdict = run_with(tmp_path, "none", stem)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert verdict["ok"] and verdict["verify"]["decode_steps"] > 0


@pytest.mark.parametrize("fault, stem", CASES)
def test_verify_fails_on_a_wrong_computation(tmp_path, fault, stem):
    done, verdict = run_with(tmp_path, fault, stem)
    output = done.stdout + done.stderr
    assert done.returncode == ExitCode.VERIFY_FAILED, output[-3000:]
    assert "verify:" in done.stdout and "FAILED" in done.stdout, output[-3000:]
    assert verdict["ok"] is False and verdict["verify"]["ok"] is False
    assert verdict["verify"]["relative_error"] > TOLERANCE["fp32"]  # the mock configs' dtype


def test_tolerance_per_dtype_is_pinned():
    """Loosening verify's tolerance must fail a test: max |error| / max |reference| per dtype."""
    assert TOLERANCE == {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2}
