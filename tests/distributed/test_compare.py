"""launch/compare.py end to end on 4 CPU ranks: one config run in both modes with --verify over
two interleaved rounds (torchrun, the faster launcher), and a run that fails (deepspeed's
launcher, which passes the run's exit code on; torchrun's says 1 whatever failed)."""

import json
import statistics
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
        "--repeats",
        "2",
        "--results-dir",
        str(tmp_path),
        "--plot",
        str(plot),
        timeout=420,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stems = ("mock_dense_baseline", "mock_dense_baseline.layerwise")
    rounds = {
        stem: [json.loads((tmp_path / f"{stem}.r{r}.results.json").read_text()) for r in (1, 2)]
        for stem in stems
    }
    baseline, layerwise = (rounds[stem][0] for stem in stems)
    assert (baseline["mode"], layerwise["mode"]) == ("baseline", "layerwise")
    assert all(run["verify"]["ok"] for runs in rounds.values() for run in runs)
    order = [line.split(": ")[1] for line in done.stdout.splitlines() if line.startswith("# round")]
    assert [entry.split(" = ")[0] for entry in order] == ["A", "B", "A", "B"]  # interleaved
    table = done.stdout[done.stdout.index("comparison: mock-dense on 4 ranks") :]
    assert "median and range (min..max) of 2 rounds" in table
    row = next(line for line in table.splitlines() if line.startswith("prefill TPS"))
    medians = {
        stem: statistics.median(run["measured"]["tps"] for run in runs)
        for stem, runs in rounds.items()
    }
    measured = medians[stems[1]] / medians[stems[0]]
    predicted = layerwise["predicted"]["tps"] / baseline["predicted"]["tps"]
    assert row.split()[-2:] == [f"{predicted:.3f}", f"{measured:.3f}"]
    low, high = sorted(run["measured"]["tps"] for run in rounds[stems[0]])
    assert f"{low:,.0f}..{high:,.0f}" in row
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
