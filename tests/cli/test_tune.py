"""launch/tune.py without launching: the runtime's runs replaced by a fake machine, so the
checks made before any run, the table, the files written and the exit codes are tested in
seconds (the real runs: tests/distributed/test_tune.py)."""

import json

import pytest

from layerwise.cli import tune
from layerwise.cli.common import plan_for_run
from layerwise.config.load import parse_config
from layerwise.errors import RunFailedError
from tests.conftest import CONFIGS

DENSE = str(CONFIGS / "mock_dense_layerwise.json")


class FakeRuns:
    """run_quietly's stand-in: prefill tokens/s by candidate (a file stem like
    'layerwise-2x2.r1'), an exception to raise instead, and every run's name logged."""

    def __init__(self, tps: dict[str, object]):
        self.tps = tps
        self.names: list[str] = []
        self.timed_runs: list[int] = []

    def __call__(self, data: dict, folder, name: str, timeout_s: float) -> dict:
        self.names.append(name)
        self.timed_runs.append(data["run"]["timed_iters"])
        value = self.tps[name.split(".r")[0]]
        if isinstance(value, BaseException):
            raise value
        return {"measured": {"tps": value, "tpot_ms": 1e3 / value, "inv_tps_ms": 1e3 / value}}


@pytest.fixture
def fake(monkeypatch):
    def install(tps: dict[str, object]) -> FakeRuns:
        runs = FakeRuns(tps)
        monkeypatch.setattr(tune, "run_quietly", runs)
        return runs

    return install


def test_a_bad_config_exits_2_with_one_message_and_runs_nothing(fake, tmp_path, capsys):
    runs = fake({})
    data = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    data["baseline"]["micro_batches"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code = tune.main(["--config", str(path), "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and runs.names == []
    assert err.count("error:") == 1 and "baseline.micro_batches = 3 must divide" in err
    assert "Traceback" not in err and not (tmp_path / "tune.json").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--top", "0"], "--top: 0 must be at least 1"),
        (["--repeats", "-1"], "--repeats: -1 must be at least 1"),
        (["--runs", "0"], "--runs: 0 must be at least 1"),
        (["--timeout-s", "0"], "--timeout-s: 0.0 must be above 0"),
        (["--out", "/no/such/dir/best.json"], "--out: folder '/no/such/dir' does not exist"),
        (["--results-dir", "/no/such/dir"], "--results-dir: folder '/no/such/dir' does not"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(fake, capsys, extra, message):
    runs = fake({})
    assert tune.main(["--config", DENSE, *extra]) == 2
    assert message in capsys.readouterr().err and runs.names == []


def test_latency_without_decode_steps_is_refused(fake, tmp_path, capsys):
    runs = fake({})
    data = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    data["workload"]["decode_steps"] = 0
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    assert tune.main(["--config", str(path), "--objective", "latency"]) == 2
    assert "needs workload.decode_steps > 0" in capsys.readouterr().err and runs.names == []


def test_a_tuning_prints_its_table_and_writes_the_winner_and_every_row(fake, tmp_path, capsys):
    # predicted order for mock-dense, throughput: baseline TP1xPP4, layerwise 4x1, 2x2, 1x4, ...
    # and last the control: layer-wise 1x4 at an even split (its exact split is [4, 0, 0, 4])
    runs = fake(
        {
            "baseline-TP1xPP4": 900.0,
            "layerwise-4x1": 1000.0,
            "layerwise-2x2": 500.0,
            "layerwise-1x4-even": 400.0,
        }
    )
    out = tmp_path / "best.json"
    code = tune.main(
        ["--config", DENSE, "--top", "3", "--repeats", "2", "--out", str(out)]
        + ["--results-dir", str(tmp_path)]
    )
    stdout = capsys.readouterr().out
    assert code == 0
    assert runs.names == [
        "baseline-TP1xPP4.r1",
        "layerwise-4x1.r1",
        "layerwise-2x2.r1",
        "layerwise-1x4-even.r1",
        "baseline-TP1xPP4.r2",
        "layerwise-4x1.r2",
        "layerwise-2x2.r2",
        "layerwise-1x4-even.r2",
    ]
    rows = {
        line.split()[1]: line.split() for line in stdout.splitlines() if line[:4] in "layerbase"
    }
    assert rows["TP1xPP4"][3:] == ["900", "900..900", "1", "2"]
    assert rows["4x1"][3:] == ["1,000", "1,000..1,000", "2", "1"]
    assert rows["2x2"][3:] == ["500", "500..500", "3", "3"]
    assert rows["1x4"][4:] == ["400", "400..400", "4", "4"]  # "layerwise 1x4 even ..."
    assert "winner: layerwise 4x1 (best measured median); the model's pick: baseline TP1xPP4" in (
        stdout
    )
    # pairs in the same order: 5 of 6 (only TP1xPP4 vs 4x1 is swapped): tau = (5 - 1) / 6
    assert "Kendall tau, predicted vs measured order: 0.67 over 4 measured candidates" in stdout
    assert "regret: 0.900" in stdout
    written = json.loads(out.read_text())
    assert written == json.loads((tmp_path / "best.json").read_text())
    config = parse_config(written, "best")
    layout = plan_for_run(config).layout(config.mode)
    assert (config.mode, layout.replicas, len(layout.stages)) == ("layerwise", 4, 1)
    summary = json.loads((tmp_path / "tune.json").read_text())
    assert [row["name"] for row in summary["rows"]] == [
        "baseline TP1xPP4",
        "layerwise 4x1",
        "layerwise 2x2",
        "layerwise 1x4 even",
    ]
    assert summary["winner"] == "layerwise 4x1" and summary["regret"] == pytest.approx(0.9)
    assert summary["rows"][1]["runs"][0]["tps"] == 1000.0 and summary["rows"][1]["median"] == 1000


def test_a_failed_candidate_is_shown_and_skipped(fake, tmp_path, capsys):
    failure = RunFailedError("baseline-TP1xPP4.r1", "error: ranks disagree", 1, 600.0)
    runs = fake({"baseline-TP1xPP4": failure, "layerwise-4x1": 1000.0})
    code = tune.main(
        ["--config", DENSE, "--top", "2", "--no-control", "--results-dir", str(tmp_path)]
    )
    stdout = capsys.readouterr().out
    assert code == 0 and runs.names.count("baseline-TP1xPP4.r1") == 1
    assert len(runs.names) == 4  # 4x1 ran its 3 rounds, TP1xPP4 only its first
    failed = next(line for line in stdout.splitlines() if line.startswith("baseline TP1xPP4"))
    assert failed.split()[3:] == ["FAILED", "1", "-"]
    assert "baseline TP1xPP4 failed: run 'baseline-TP1xPP4.r1' failed (exit 1): error: r" in stdout
    rows = json.loads((tmp_path / "tune.json").read_text())["rows"]
    assert rows[0]["error"].startswith("run 'baseline-TP1xPP4.r1' failed") and rows[0]["runs"] == []


def test_all_failed_exits_1_and_still_writes_the_rows(fake, tmp_path, capsys):
    fake({"baseline-TP1xPP4": RuntimeError("broke"), "layerwise-4x1": RuntimeError("broke too")})
    code = tune.main(
        ["--config", DENSE, "--top", "2", "--no-control", "--results-dir", str(tmp_path)]
    )
    assert code == 1
    assert "all 2 candidates failed" in capsys.readouterr().err
    rows = json.loads((tmp_path / "tune.json").read_text())["rows"]
    assert [row["error"] for row in rows] == ["broke", "broke too"]
    assert not (tmp_path / "best.json").exists()


def test_top_larger_than_the_candidates_runs_them_all(fake, tmp_path):
    order = ["baseline-TP1xPP4", "layerwise-4x1", "layerwise-2x2", "layerwise-1x4",
             "baseline-TP2xPP2", "baseline-TP4xPP1"]  # fmt: skip
    runs = fake({name: float(rank) for rank, name in enumerate(order, start=1)})
    args = ["--config", DENSE, "--top", "9", "--repeats", "1", "--results-dir", str(tmp_path)]
    assert tune.main([*args, "--no-control"]) == 0
    assert runs.names == [f"{name}.r1" for name in order]
    summary = json.loads((tmp_path / "tune.json").read_text())
    assert summary["kendall_tau"] == pytest.approx(-1.0)  # measured exactly reversed
    assert summary["regret"] == pytest.approx(1 / 6)


def test_ctrl_c_stops_the_tuning_with_130(fake, tmp_path, capsys):
    fake({"baseline-TP1xPP4": KeyboardInterrupt()})
    assert tune.main(["--config", DENSE, "--results-dir", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_each_launch_times_the_runs_asked_for_and_the_winners_config_keeps_its_own(fake, tmp_path):
    """--runs sets every launch's timed runs (a round's figure is their median); the winner's
    config written for the user keeps the config's own run.timed_iters."""
    runs = fake({name: 1000.0 for name in ("baseline-TP1xPP4", "layerwise-4x1")})
    out = tmp_path / "best.json"
    argv = ["--config", DENSE, "--top", "2", "--repeats", "1", "--no-control", "--runs", "7"]
    assert tune.main([*argv, "--out", str(out), "--results-dir", str(tmp_path)]) == 0
    assert runs.timed_runs == [7, 7]
    own = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())["run"]["timed_iters"]
    assert json.loads(out.read_text())["run"]["timed_iters"] == own != 7
    assert json.loads((tmp_path / "tune.json").read_text())["runs"] == 7


def test_fp8_is_refused_before_any_run(fake, tmp_path, capsys):
    runs = fake({})
    data = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    data["run"]["weights_dtype"] = "fp8"
    path = tmp_path / "fp8.json"
    path.write_text(json.dumps(data))
    assert tune.main(["--config", str(path), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "run.weights_dtype = 'fp8': the runtime has no FP8 path yet" in err
    assert runs.names == []
