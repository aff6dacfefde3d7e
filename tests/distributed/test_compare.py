"""launch/compare.py end to end on 4 CPU ranks: one config run in both modes with --verify
(torchrun, the faster launcher), and a run that fails (deepspeed's launcher, which passes the
run's exit code on; torchrun's says 1 whatever failed)."""

import json
import sys

from .conftest import ROOT, launch


def compare(*args: str, timeout: float = 300):
    return launch([sys.executable], "launch/compare.py", *args, timeout=timeout)


def test_one_config_in_both_modes_side_by_side(tmp_path):
    plot = tmp_path / "compare.png"
    done = compare(
        "--launcher",
        "torchrun",
        "--config",
        "configs/mock_dense_baseline.json",
        "--verify",
        "--results-dir",
        str(tmp_path),
        "--plot",
        str(plot),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    baseline = json.loads((tmp_path / "mock_dense_baseline.results.json").read_text())
    layerwise = json.loads((tmp_path / "mock_dense_baseline.layerwise.results.json").read_text())
    assert (baseline["mode"], layerwise["mode"]) == ("baseline", "layerwise")
    assert baseline["verify"]["ok"] and layerwise["verify"]["ok"]
    table = done.stdout[done.stdout.index("comparison: mock-dense on 4 ranks") :]
    row = next(line for line in table.splitlines() if line.startswith("prefill TPS"))
    measured = layerwise["measured"]["tps"] / baseline["measured"]["tps"]
    predicted = layerwise["predicted"]["tps"] / baseline["predicted"]["tps"]
    assert row.split()[-2:] == [f"{predicted:.3f}", f"{measured:.3f}"]
    assert "A ok" in table and "B ok" in table
    assert "(configs/mock_dense_baseline.json with mode 'layerwise')" in table
    assert "TP=2 x PP=2 (megatron-core)" in table and "(DeepSpeed pipeline)" in table
    for chatter in ("SEED_LAYERS", "Using topology", "[INFO]"):  # quiet without --verbose
        assert chatter not in done.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_failing_run_stops_the_comparison_with_its_error_and_code(tmp_path):
    data = json.loads((ROOT / "configs/mock_dense_layerwise.json").read_text())
    data["deepspeed"] = {"zero_optimization": {"stage": "three"}}
    data["hardware"]["profile"] = str(ROOT / "plugin/layerwise/hardware/profiles/cpu-mock.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    done = compare("--config", str(bad), "--config", "configs/mock_dense_baseline.json")
    assert done.returncode == 2
    refusal = "deepspeed: DeepSpeed refuses it (DeepSpeedZeroConfig): stage: Input should be"
    assert done.stderr.count(refusal) == 1, done.stderr
    assert f"error: the run of {bad} failed (exit code 2)" in done.stderr
    assert done.stdout.count("$ python") == 1 and "comparison:" not in done.stdout
