"""launch/infer.py's own logic, in this process: what each kind of failure prints and returns,
and what is written. The run itself is replaced where a test needs a given outcome."""

import json
import logging

import pytest
import torch

from layerwise.cli import infer as launcher
from layerwise.errors import ExitCode
from layerwise.runtime import session
from layerwise.runtime.session import MOCK_DEVICE, Measurement
from layerwise.runtime.verify import Verdict
from tests.conftest import CONFIGS, PROFILES


@pytest.fixture
def one_rank(monkeypatch, tmp_path):
    """A mock-dense config for one rank, launched as rank 0 of 1."""
    data = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    data["hardware"] = {"profile": str(PROFILES / "cpu-mock.yaml"), "gpus": 1}
    data["baseline"] = {"tensor_parallel": 1, "pipeline_parallel": 1}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(data))
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    return path


def run_returns(monkeypatch, outcome):
    def fake_run(config, layout, env, verify):
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(session, "run", fake_run)


def measured(verdict=None) -> Measurement:
    return Measurement(MOCK_DEVICE, (0.5, 0.25), (0.01,), verdict)


def test_failed_verify_exits_3_and_still_writes_results(monkeypatch, capsys, one_rank, tmp_path):
    run_returns(monkeypatch, measured(Verdict(2, 0.5, 0.1, 1e-4)))
    results = tmp_path / "results.json"
    code = launcher.main(["--config", str(one_rank), "--results", str(results), "--verify"])
    assert code == ExitCode.VERIFY_FAILED == 3
    assert "relative 1.000e-01 (tolerance 1e-04): FAILED" in capsys.readouterr().out
    data = json.loads(results.read_text())
    assert data["ok"] is False and data["verify"]["ok"] is False
    assert data["measured"]["prefill_s"] == [0.5, 0.25]
    assert data["measured"]["tps"] == pytest.approx(256 / 0.375)  # median of the timed runs


def test_a_good_run_exits_0(monkeypatch, capsys, one_rank, tmp_path):
    run_returns(monkeypatch, measured(Verdict(2, 0.0, 0.0, 1e-4)))
    results = tmp_path / "results.json"
    assert launcher.main(["--config", str(one_rank), "--results", str(results)]) == 0
    assert json.loads(results.read_text())["ok"] is True
    assert "TPOT (ms, decode step)" in capsys.readouterr().out


def test_user_error_inside_the_run_is_one_message_exit_2(monkeypatch, capsys, one_rank):
    from layerwise.errors import ConfigError

    run_returns(monkeypatch, ConfigError(["deepspeed: DeepSpeed refuses it: stage"], "x.json"))
    assert launcher.main(["--config", str(one_rank)]) == 2
    err = capsys.readouterr().err
    assert "error: x.json: 1 problem" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "error, shown",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "CUDA out of"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 8 GB"), "Default"),
        (MemoryError(), "MemoryError"),
    ],
)
def test_out_of_memory_names_the_plan_and_the_knobs(monkeypatch, capsys, one_rank, error, shown):
    """On a GPU or on CPU ranks: exit 2, one message per rank that met it, no traceback."""
    run_returns(monkeypatch, error)
    assert launcher.main(["--config", str(one_rank)]) == 2
    err = capsys.readouterr().err
    assert f"error (rank 0): out of memory ({shown}" in err and "Traceback" not in err
    assert "the plan predicted" in err and "workload.batch_size" in err


def test_internal_errors_keep_their_traceback(monkeypatch, one_rank):
    run_returns(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        launcher.main(["--config", str(one_rank)])


def test_config_errors_are_printed_by_rank_0_only(monkeypatch, capsys, one_rank):
    monkeypatch.setattr(launcher, "PEER_EXIT_DELAY_S", 0.0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, printed in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        assert launcher.main(["--config", str(one_rank)]) == 2
        err = capsys.readouterr().err
        assert ("hardware.gpus = 1, but the launcher started 2 ranks" in err) == printed


def test_a_plain_process_is_told_how_to_launch(monkeypatch, capsys):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    config = CONFIGS / "mock_gpt_baseline.json"
    assert launcher.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "launch/infer.py was started as one process" in err
    assert f"deepspeed --num_gpus 4 launch/infer.py --config {config}" in err
    assert f"torchrun --nproc_per_node 4 launch/infer.py --config {config}" in err


@pytest.mark.parametrize(
    "model, field", [("mock-gpt", "model.heads = 4"), ("mock-dense", "model.hidden = 64")]
)
def test_a_tensor_parallel_size_that_does_not_divide_is_a_config_error(
    monkeypatch, capsys, tmp_path, model, field
):
    data = json.loads((CONFIGS / "mock_gpt_baseline.json").read_text())
    data["model"] = model
    data["hardware"] = {"profile": str(PROFILES / "cpu-mock.yaml"), "gpus": 3}
    data["baseline"] = {"tensor_parallel": 3, "pipeline_parallel": 1}
    data["layerwise"]["replicas"] = 1
    path = tmp_path / "tp3.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    results = tmp_path / "results.json"
    assert launcher.main(["--config", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"baseline.tensor_parallel = 3 does not divide {field}" in err
    assert "Traceback" not in err and not results.exists()


def test_missing_results_folder_is_refused_before_anything_runs(monkeypatch, capsys, one_rank):
    run_returns(monkeypatch, RuntimeError("must not run"))
    assert launcher.main(["--config", str(one_rank), "--results", "/no/such/dir/r.json"]) == 2
    assert "--results: folder '/no/such/dir' does not exist" in capsys.readouterr().err


def test_a_deepspeed_section_in_baseline_mode_is_noted(monkeypatch, caplog, one_rank):
    data = json.loads(one_rank.read_text())
    data["mode"] = "baseline"
    data["deepspeed"] = {"steps_per_print": 5}
    one_rank.write_text(json.dumps(data))
    run_returns(monkeypatch, measured())
    with caplog.at_level(logging.WARNING, logger="layerwise"):
        assert launcher.main(["--config", str(one_rank)]) == 0
    assert "the deepspeed section configures the layer-wise runtime only" in caplog.text


def test_fp8_is_planned_but_refused_by_the_runtime_before_any_run(monkeypatch, capsys, one_rank):
    ran = []
    monkeypatch.setattr("layerwise.runtime.session.run", lambda *args, **kwargs: ran.append(1))
    data = json.loads(one_rank.read_text())
    data["run"]["weights_dtype"] = "fp8"
    one_rank.write_text(json.dumps(data))
    assert launcher.main(["--config", str(one_rank)]) == 2
    err = capsys.readouterr().err
    assert "run.weights_dtype = 'fp8': the runtime has no FP8 path yet" in err and not ran
    from layerwise.cli import plan as plan_cli

    assert plan_cli.main(["--config", str(one_rank)]) == 0  # the planner prices it
