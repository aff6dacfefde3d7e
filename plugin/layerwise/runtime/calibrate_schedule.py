"""The pipeline engines' own cost, the schedule_us of a profile.

Each runtime (DeepSpeed's pipeline engine for layer-wise, megatron-core's forward-only schedule
for the baseline) runs the config's model at its smallest shape through launch/infer.py on the
config's world size, one stage per rank, with 1, 4 and 16 micro-batches. What a run takes
beyond the profile's prediction of its layers and hops is fitted as
    residual(M) = per run + (M + stages - 1) x per micro-batch  (least squares),
the cost of a pipeline step that the kernels, layer calls and links measured alone do not show
(on CPU ranks that share cores, mostly waiting for the scheduler to wake the next stage).
"""

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from layerwise.compare import free_port
from layerwise.config import RunConfig
from layerwise.fit import fit_line
from layerwise.runtime.calibrate import Progress
from layerwise.runtime.calibrate_layers import tiny_model

MICRO_BATCHES = (1, 4, 16)
TIMED_RUNS = 40  # per point (median), after 3 warm-ups
ROOT = Path(__file__).resolve().parents[3]


def tiny_run(
    config: RunConfig, profile: Path, mode: str, micro_batches: int, world: int, runs: int
) -> dict:
    """A config file's data: the tiny model, two blocks a stage, `micro_batches` one-token
    sequences in as many micro-batches, one stage on each of `world` ranks, the profile at
    `profile`, `runs` timed runs."""
    model = dataclasses.asdict(tiny_model(config.model))
    model["num_layers"] = 2 * world
    return {
        "mode": mode,
        "model": model,
        "hardware": {"profile": str(profile), "gpus": world},
        "workload": {"batch_size": micro_batches, "seq_len": 1, "decode_steps": 0},
        "baseline": {
            "tensor_parallel": 1,
            "pipeline_parallel": world,
            "micro_batches": micro_batches,
        },
        "layerwise": {"replicas": 1, "micro_batches": micro_batches},
        "run": {
            "dtype": config.run.dtype,
            "warmup_iters": 3,
            "timed_iters": runs,
            "timeout_s": 120.0,
        },
    }


def _residual(data: dict, folder: Path, name: str) -> tuple[float, int]:
    """(measured - predicted seconds of one prefill run, stages) from one launch/infer.py run."""
    path, results = folder / f"{name}.json", folder / f"{name}.results.json"
    path.write_text(json.dumps(data))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
        str(data["hardware"]["gpus"]), "--master_port", str(free_port()),
        str(ROOT / "launch" / "infer.py"), "--config", str(path), "--results", str(results),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith(("error", "  - "))]
        raise RuntimeError(f"calibration run {name} failed: " + "\n".join(said or [done.stderr]))
    run = json.loads(results.read_text())
    tokens = data["workload"]["batch_size"]
    measured = statistics.median(run["measured"]["prefill_s"])
    return measured - tokens / run["predicted"]["tps"], data["hardware"]["gpus"]


def measure_schedules(
    config: RunConfig,
    world: int,
    profile_data: dict,
    progress: Progress,
    micro_batch_counts: tuple[int, ...] = MICRO_BATCHES,
    runs: int = TIMED_RUNS,
) -> dict[str, dict[str, float]]:
    """{mode: {"run": us, "micro_batch": us}}, each at least 0; `profile_data` is the profile
    so far (what the runs are predicted with), without schedule_us."""
    found = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        profile = folder / "profile.yaml"
        profile.write_text(yaml.safe_dump({**profile_data, "schedule_us": {}}))
        for mode in ("layerwise", "baseline"):
            residuals = []
            for micro_batches in micro_batch_counts:
                data = tiny_run(config, profile, mode, micro_batches, world, runs)
                residual, stages = _residual(data, folder, f"{mode}{micro_batches}")
                residuals.append(residual)
                progress.step(f"{mode} engine on {stages} ranks, {micro_batches} micro-batch(es)")
            steps = [float(m + stages - 1) for m in micro_batch_counts]
            line = fit_line(list(zip(steps, residuals)))
            per_step = 1e-9 / line.gbs if line.gbs else 0.0  # the slope, seconds per step
            found[mode] = {"run": line.intercept_s * 1e6, "micro_batch": per_step * 1e6}
    return found
