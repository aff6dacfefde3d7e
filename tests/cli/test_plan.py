"""launch/plan.py end to end in a subprocess: tables, JSON, PNG, and clean failures."""

import json
import os
import subprocess
import sys

import pytest

from layerwise import make_plan, parse_config
from tests.conftest import CONFIGS, ROOT


def plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "launch/plan.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_plan_prints_tables_and_writes_json_and_png(tmp_path):
    out_json, out_png = tmp_path / "plan.json", tmp_path / "plan.png"
    done = plan(
        "--config",
        str(CONFIGS / "seed_gpt_layerwise.json"),
        "--json",
        str(out_json),
        "--plot",
        str(out_png),
    )
    assert done.returncode == 0, done.stderr
    for text in (
        "== baseline ==",
        "== layerwise ==",
        "prefill TPS",
        "TPOT",
        "1/TPS",
        "recommended: layerwise",
        "PREDICTED",
    ):
        assert text in done.stdout
    data = json.loads(out_json.read_text())
    assert {"baseline", "layerwise", "recommended"} <= set(data)
    for mode in ("baseline", "layerwise"):
        layout = data[mode]
        for key in ("tps", "tpot_ms", "bubble_fraction", "memory_bytes_per_gpu", "stages"):
            assert key in layout
        assert layout["inv_tps_ms"] == pytest.approx(1e3 / layout["tps"])
        assert sum(stage["num_layers"] for stage in layout["stages"]) == 16
        streams = layout["decode_micro_batches"] >= layout["pipeline_stages"]
        assert layout["decode_streamed"] is streams
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_bad_config_exits_2_with_one_message_and_writes_nothing(tmp_path):
    config = json.loads((CONFIGS / "seed_dense_baseline.json").read_text())
    config["baseline"]["pipeline_parallel"] = 9  # 16 dense layers under TP: no 9 even stages
    config["run"]["timed_iters"] = -1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    out_json = tmp_path / "plan.json"
    done = plan("--config", str(path), "--json", str(out_json))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "3 problems" in done.stderr and "8 x 9 = 72, but hardware.gpus = 16" in done.stderr
    assert "run.timed_iters: must be >= 1, got -1" in done.stderr
    assert not out_json.exists() and done.stdout == ""


def test_missing_output_folder_is_refused_before_planning(tmp_path):
    done = plan(
        "--config",
        str(CONFIGS / "mock_dense_layerwise.json"),
        "--json",
        str(tmp_path / "nowhere" / "plan.json"),
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_config_file():
    done = plan("--config", "configs/no_such.json")
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_permissions_the_umask_allows(tmp_path, umask):
    from layerwise.cli.common import write_atomically

    previous = os.umask(umask)
    try:
        write_atomically(tmp_path / "out.json", b"{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".PDF", b"%PDF")])
def test_plot_writes_the_format_its_suffix_names(tmp_path, suffix, magic):
    out = tmp_path / f"timeline{suffix}"
    done = plan("--config", str(CONFIGS / "mock_gpt_layerwise.json"), "--plot", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["timeline.jpg", "timeline"])
def test_plot_suffix_without_a_format_is_refused_before_planning(tmp_path, name):
    out, out_json = tmp_path / name, tmp_path / "plan.json"
    done = plan(
        "--config",
        str(CONFIGS / "mock_gpt_layerwise.json"),
        "--plot",
        str(out),
        "--json",
        str(out_json),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--plot: {str(out)!r} must end in .png, .svg, .pdf" in done.stderr
    assert not out.exists() and not out_json.exists() and done.stdout == ""


def test_json_and_text_say_what_was_compared_for_the_objective(tmp_path):
    config = json.loads((CONFIGS / "seed_gpt_baseline.json").read_text())
    config["objective"] = "latency"
    path, out_json = tmp_path / "latency.json", tmp_path / "plan.json"
    path.write_text(json.dumps(config))
    done = plan("--config", str(path), "--json", str(out_json))
    assert done.returncode == 0, done.stderr
    data = json.loads(out_json.read_text())
    assert data["objective"] == "latency" and data["recommended"] == "baseline"
    assert data["compared"].startswith(
        "baseline at TP x PP 1x16, 2x8, 4x4, 8x2; layer-wise at 1, 2, 4, 8, 16 replicas; "
        "best for latency: baseline TP8 x PP2"
    )
    assert data["best_layerwise_replicas"] == data["layerwise"]["replicas"]
    assert data["layerwise_replicas_searched"] == "all"
    assert f"compared: {data['compared']}" in done.stdout
    assert "objective 'latency'" in done.stdout


def test_the_json_recommendation_carries_a_config_that_runs_it(tmp_path):
    """mock-dense's config runs TP2 x PP2 layer-wise 1 replica; the recommendation (TP1 x PP4)
    comes with a complete config that plans exactly that layout."""
    out_json = tmp_path / "plan.json"
    done = plan("--config", "configs/mock_dense_layerwise.json", "--json", str(out_json))
    assert done.returncode == 0, done.stderr
    recommendation = json.loads(out_json.read_text())["recommendation"]
    config = parse_config(recommendation["config"], "recommended", tmp_path)  # paths absolute
    layout = make_plan(config).layout(config.mode)
    assert (config.mode, layout.tensor_parallel, len(layout.stages)) == ("baseline", 1, 4)
    assert layout.tps == pytest.approx(recommendation["tps"])
    original = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())
    assert recommendation["config"]["workload"] == original["workload"]


def test_max_batch_table_prints_and_writes_each_layout_at_its_largest_batch(tmp_path, capsys):
    from layerwise.cli import plan as plan_cli

    out = tmp_path / "plan.json"
    config = str(CONFIGS / "mock_llama_layerwise.json")
    assert plan_cli.main(["--config", config, "--max-batch", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "each layout at the largest batch it fits (PREDICTED)" in text
    rows = json.loads(out.read_text())["largest_batch"]
    fitting = [row for row in rows if row["batch_size"]]
    assert fitting and all(row["batch_size"] > 8 for row in fitting)  # more than the config's
    assert [r["decode_tps"] for r in fitting] == sorted(
        (r["decode_tps"] for r in fitting), reverse=True
    )
    for row in fitting[:2]:
        assert f"{row['label']:>34}{row['batch_size']:>8}" in text
    best = fitting[0]
    assert f"most decode tokens/s at its own largest batch: {best['label']}, " in text
    data = json.loads((CONFIGS / "mock_llama_layerwise.json").read_text())
    data["workload"]["batch_size"] = "max"
    (tmp_path / "max.json").write_text(json.dumps(data))
    assert plan_cli.main(["--config", str(tmp_path / "max.json")]) == 0  # no flag needed
    assert "most decode tokens/s at its own largest batch" in capsys.readouterr().out
