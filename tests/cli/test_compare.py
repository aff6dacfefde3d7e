"""launch/compare.py without launching: the side-by-side table and the checks made before any
run starts (the runs themselves: tests/distributed/test_compare.py)."""

import json

import pytest

from layerwise.cli.compare import check_configs, combined, comparison_table, main, switched
from tests.conftest import CONFIGS, PROFILES


def result(mode: str, tps: float, tpot_ms: float | None, ok: bool | None) -> dict:
    run = {
        "mode": mode,
        "config": f"configs/x_{mode}.json",
        "model": "mock-dense",
        "world_size": 4,
        "device": "cpu (mock)",
        "layout": f"{mode} layout",
        "predicted": {"tps": tps * 2, "tpot_ms": 1.0, "inv_tps_ms": 1e3 / (tps * 2)},
        "measured": {"tps": tps, "tpot_ms": tpot_ms, "inv_tps_ms": 1e3 / tps},
    }
    if ok is not None:
        run["verify"] = {"ok": ok, "relative_error": 0.0 if ok else 0.5}
    return run


def test_table_shows_both_runs_and_the_ratios():
    table = comparison_table(
        [result("baseline", 1000.0, 4.0, True), result("layerwise", 1500.0, None, False)]
    )
    prefill = next(line for line in table.splitlines() if line.startswith("prefill TPS"))
    assert prefill.split()[-8:] == [
        "2,000",
        "1,000",
        "1,000..1,000",
        "3,000",
        "1,500",
        "1,500..1,500",
        "1.500",
        "1.500",
    ]
    tpot = next(line for line in table.splitlines() if line.startswith("TPOT"))
    assert "not measured" in tpot and tpot.split()[-3:] == ["-", "1.000", "-"]
    assert "A = baseline: baseline layout (configs/x_baseline.json)" in table
    assert "A ok (relative error 0.0e+00); B FAILED (relative error 5.0e-01)" in table


def test_rounds_give_medians_ranges_and_the_ratio_of_medians():
    a_rounds = [result("baseline", tps, 4.0, True) for tps in (1000.0, 1400.0, 900.0)]
    b_rounds = [result("layerwise", tps, 2.0, True) for tps in (3000.0, 2400.0, 2600.0)]
    b_rounds[1]["verify"] = {"ok": False, "relative_error": 0.5}
    a, b = combined(a_rounds), combined(b_rounds)
    assert (a["measured"]["tps"], b["measured"]["tps"]) == (1000.0, 2600.0)
    assert [run["tps"] for run in b["rounds"]] == [3000.0, 2400.0, 2600.0]
    assert b["verify"]["ok"] is False  # one failed round fails the verdict
    table = comparison_table([a, b])
    assert "median and range (min..max) of 3 rounds, A B interleaved" in table
    prefill = next(line for line in table.splitlines() if line.startswith("prefill TPS"))
    assert prefill.split()[-8:] == [
        "2,000",  # predicted: the first round's (every round predicts alike)
        "1,000",
        "900..1,400",
        "6,000",
        "2,600",
        "2,400..3,000",
        "3.000",
        "2.600",  # B/A of the medians, not of any one round
    ]


def test_verdict_names_greedy_tokens_for_a_vocabulary_model():
    runs = [result("baseline", 1000.0, 4.0, True), result("layerwise", 1500.0, 3.0, True)]
    runs[0]["verify"]["greedy_match"], runs[1]["verify"]["greedy_match"] = True, False
    table = comparison_table(runs)
    assert "A ok (relative error 0.0e+00, greedy tokens equal)" in table
    assert "B ok (relative error 0.0e+00, greedy tokens DIFFER)" in table


def test_switched_copy_runs_the_other_mode_and_keeps_its_profile(tmp_path):
    data = json.loads((CONFIGS / "mock_dense_baseline.json").read_text())
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text((PROFILES / "cpu-mock.yaml").read_text())
    data["hardware"]["profile"] = "mine.yaml"
    original = tmp_path / "configs" / "x.json"
    original.write_text(json.dumps(data))
    (tmp_path / "scratch").mkdir()
    copy = switched(original, tmp_path / "scratch")
    configs = check_configs([original, copy])
    assert [c.mode for c in configs] == ["baseline", "layerwise"]
    assert json.loads(copy.read_text())["hardware"]["profile"] == str(
        (tmp_path / "configs" / "mine.yaml").resolve()
    )


def test_configs_of_different_models_are_refused(capsys):
    code = main(
        [
            "--config",
            str(CONFIGS / "mock_dense_baseline.json"),
            "--config",
            str(CONFIGS / "mock_gpt_layerwise.json"),
        ]
    )
    assert code == 2
    assert "model differ between the configs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--plot", "/no/such/dir/x.png"], "--plot: folder '/no/such/dir' does not exist"),
        (["--results-dir", "/no/such/dir"], "--results-dir: folder '/no/such/dir' does not exist"),
        (["--config", "a.json", "--config", "b.json"], "give one or two configs, got 3"),
        (["--repeats", "0"], "--repeats: 0 must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(capsys, extra, message):
    assert main(["--config", str(CONFIGS / "mock_dense_baseline.json"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_an_invalid_config_is_refused_before_any_run(capsys, tmp_path):
    data = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    data["baseline"]["micro_batches"] = 3
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    assert main(["--config", str(path)]) == 2
    assert "baseline.micro_batches = 3 must divide" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message", [("[1, 2]", "expected a JSON object at the top"), ('{"hardware": []}', "")]
)
def test_a_file_that_is_not_a_config_is_one_message(capsys, tmp_path, text, message):
    """One config is run in both modes through a switched copy: a top-level list or a section of
    the wrong type is refused with the file's problems before the copy is made."""
    path = tmp_path / "x.json"
    path.write_text(text)
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_fp8_is_refused_before_any_run(capsys, tmp_path, monkeypatch):
    from layerwise.cli import compare

    monkeypatch.setattr(compare, "run_one", lambda *args: pytest.fail("a run was started"))
    data = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    data["run"]["kv_dtype"] = "fp8"
    path = tmp_path / "fp8.json"
    path.write_text(json.dumps(data))
    assert main(["--config", str(path)]) == 2
    assert "run.kv_dtype = 'fp8': the runtime has no FP8 path yet" in capsys.readouterr().err


def test_a_run_that_fails_after_writing_results_marks_them_failed(capsys, tmp_path, monkeypatch):
    """Rank 0 wrote "ok": true, then the launcher exited 247 (a rank died late): compare stops
    with that code and the file it leaves says the run failed."""
    from layerwise.cli import compare

    def finished_then_died(args, config_path, ranks, results):
        results.write_text(json.dumps({"ok": True}))
        return 247

    monkeypatch.setattr(compare, "run_one", finished_then_died)
    config = str(CONFIGS / "mock_dense_layerwise.json")
    assert main(["--config", config, "--repeats", "1", "--results-dir", str(tmp_path)]) == 247
    written = json.loads((tmp_path / "mock_dense_layerwise.r1.results.json").read_text())
    assert written == {"ok": False, "launcher_exit_code": 247}
