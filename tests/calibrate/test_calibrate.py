"""launch/calibrate.py end to end on this CPU (2 mock ranks, --quick), and its refusals.

The figures are timings, so they are checked for what the profile must hold together (every
shape and token count measured, the L2 verdict matching its own experiment, provenance), not
for speed; accuracy is judged on stored runs the calibration never saw
(tests/costmodel/test_accuracy.py).
"""

import json
import subprocess
import sys

import pytest
import yaml

from layerwise.calibrate.fit import gemm_shapes, l2_priced, token_grid
from layerwise.config.load import load_config
from layerwise.hardware.spec import load_hardware
from tests.conftest import CONFIGS, ROOT

CALIBRATE = str(ROOT / "launch" / "calibrate.py")


def two_rank_config(tmp_path) -> str:
    """mock-dense on 2 ranks (TP 2 baseline): the smallest world with links and a pipeline."""
    data = json.loads((CONFIGS / "mock_dense_baseline.json").read_text())
    data["hardware"]["gpus"] = 2
    data["baseline"].update(tensor_parallel=2, pipeline_parallel=1)
    path = tmp_path / "two_ranks.json"
    path.write_text(json.dumps(data))
    return str(path)


def run_calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, CALIBRATE, *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrated")
    config = two_rank_config(folder)
    out = folder / "this-cpu.yaml"
    done = run_calibrate("--config", config, "--out", str(out), "--quick")
    assert done.returncode == 0, done.stderr[-3000:]
    return load_config(config), out, done


def test_profile_loads_and_records_its_provenance(calibrated):
    config, out, done = calibrated
    hardware = load_hardware(out)
    assert hardware.name == "this-cpu"
    provenance = hardware.provenance
    assert provenance["measured_by"] == "launch/calibrate.py"
    assert "--quick" in provenance["command"] and provenance["torch"]
    assert {"gemm_tflops", "layer_host_us", "schedule_us", "intra_node"} <= set(
        provenance["measured"]
    )
    assert provenance["copied_from_profile"].startswith("cpu-mock:")
    assert f"wrote {out}" in done.stdout
    assert "calibrate [" in done.stderr  # the progress bar


def test_every_gemm_shape_and_token_count_of_the_config_is_measured(calibrated):
    config, out, _ = calibrated
    hardware = load_hardware(out)
    expected = {f"{rows}x{cols}" for rows, cols in gemm_shapes(config)}
    assert set(hardware.gemm_tflops) == expected
    for rates in hardware.gemm_tflops.values():
        assert sorted(rates) == token_grid(config)
        assert all(rate > 0 for rate in rates.values())


def test_cpu_figures_are_those_of_ranks_that_run_their_own_kernels(calibrated):
    _, out, _ = calibrated
    hardware = load_hardware(out)
    assert hardware.host_overlaps_device is False
    assert 0 < hardware.shared_cores <= 2  # 2 ranks, slowed by sharing
    assert hardware.gemm_floor_us == 0.0 and hardware.kernel_fixed_us > 0
    assert hardware.layer_host_us["dense"] > 0
    assert set(hardware.schedule_us) == {"layerwise", "baseline"}
    assert all(value >= 0 for costs in hardware.schedule_us.values() for value in costs.values())
    link = hardware.intra_node
    assert min(link.allreduce_busbw_measured_gbs) == 4096
    assert link.allreduce_latency_us > 0 and link.p2p_latency_us > 0


def test_l2_is_priced_exactly_when_its_own_experiment_showed_a_gain(calibrated):
    _, out, _ = calibrated
    hardware = load_hardware(out)
    experiment = hardware.provenance["l2_experiment"]
    gain = l2_priced(experiment["evicted_us"], experiment["resident_us"])
    assert experiment["priced"] == gain == (hardware.l2_gbs > 0)


def test_a_missing_output_folder_is_refused_before_measuring(tmp_path):
    config = two_rank_config(tmp_path)
    done = run_calibrate("--config", config, "--out", str(tmp_path / "no" / "x.yaml"))
    assert done.returncode == 2
    assert "--out: folder" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_calibrate("--config", config, "--out", str(tmp_path / "x.txt"))
    assert done.returncode == 2 and not (tmp_path / "x.txt").exists()


def test_a_bad_config_is_refused_with_its_problems(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mode": "layerwise"}))
    done = run_calibrate("--config", str(bad))
    assert done.returncode == 2
    assert "model: missing" in done.stderr or "missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_written_profile_is_yaml_with_a_header_naming_the_tool(calibrated):
    _, out, _ = calibrated
    text = out.read_text()
    assert text.startswith("# Written by launch/calibrate.py")
    assert yaml.safe_load(text)["name"] == "this-cpu"
