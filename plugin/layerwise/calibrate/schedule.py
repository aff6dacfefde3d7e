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
import statistics
import tempfile
from pathlib import Path

import yaml

from layerwise.calibrate.fit import least_squares
from layerwise.calibrate.kernels import Progress
from layerwise.calibrate.layers import tiny_model
from layerwise.cli.common import run_quietly
from layerwise.config.sections import RunConfig

MICRO_BATCHES = (1, 4, 16)
TIMED_RUNS = 40  # per point (median), after 3 warm-ups


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


def _residual(data: dict, folder: Path, name: str) -> float:
    """Measured - predicted seconds of one prefill run of `data` through launch/infer.py."""
    run = run_quietly(data, folder, name, timeout_s=600)
    measured = statistics.median(run["measured"]["prefill_s"])
    return measured - data["workload"]["batch_size"] / run["predicted"]["tps"]


def measure_schedules(
    config: RunConfig,
    world: int,
    profile_data: dict,
    progress: Progress,
    micro_batch_counts: tuple[int, ...] = MICRO_BATCHES,
    runs: int = TIMED_RUNS,
) -> dict[str, dict[str, float]]:
    """{mode: {"run": us, "micro_batch": us}}, each at least 0; `profile_data` is the profile
    so far (what the runs are predicted with; its schedule_us empty)."""
    found = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        profile = folder / "profile.yaml"
        profile.write_text(yaml.safe_dump(profile_data))
        for mode in ("layerwise", "baseline"):
            residuals = []
            for micro_batches in micro_batch_counts:
                data = tiny_run(config, profile, mode, micro_batches, world, runs)
                residuals.append(_residual(data, folder, f"{mode}{micro_batches}"))
                progress.step(f"{mode} engine on {world} ranks, {micro_batches} micro-batch(es)")
            steps = [float(m + world - 1) for m in micro_batch_counts]
            per_run, per_step = least_squares(list(zip(steps, residuals)))
            found[mode] = {"run": max(0.0, per_run) * 1e6, "micro_batch": max(0.0, per_step) * 1e6}
    return found
