"""One run on this rank, in steps: start the process group, build the layout's runner from this
rank's assignment, make the inputs, time prefill and decode, verify, and stop the process group
whatever happened."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from layerwise.config.sections import RunConfig
from layerwise.planner.assignment import assign
from layerwise.planner.records import Layout
from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches
from layerwise.runtime.distributed import DistEnv, init
from layerwise.runtime.logs import quiet_deepspeed

if TYPE_CHECKING:  # imported at run time only after the CPU mock patches
    from layerwise.runtime.verify import Verdict

MOCK_DEVICE = "cpu (mock)"


@dataclass(frozen=True)
class Measurement:
    """Seconds per timed prefill batch, and per decode step (each timed run of all
    workload.decode_steps steps after the prefill, divided by the steps), warm-up runs excluded;
    and the verdict of --verify on rank 0."""

    device: str
    prefill_s: tuple[float, ...]
    decode_s: tuple[float, ...]
    verdict: "Verdict | None"


def run(config: RunConfig, layout: Layout, env: DistEnv, verify: bool) -> Measurement:
    cuda = torch.cuda.is_available()
    if not cuda:
        apply_cpu_mock_patches()
    quiet_deepspeed()
    init(env, cuda, config.run.timeout_s)
    try:
        return _measure(config, layout, env, cuda, verify)
    finally:
        torch.distributed.destroy_process_group()


def _measure(
    config: RunConfig, layout: Layout, env: DistEnv, cuda: bool, verify: bool
) -> Measurement:
    from tqdm import tqdm

    from layerwise.runtime import inputs
    from layerwise.runtime.runners.base import build_runner
    from layerwise.runtime.verify import verify_outputs

    device = torch.device("cuda", env.local_rank) if cuda else torch.device("cpu")
    assignment = assign(config, layout, env.rank)
    runner = build_runner(config, layout, assignment, device)
    first_stage, model = assignment.is_first_stage, config.model
    steps = config.workload.decode_steps
    chunks = inputs.prefill_chunks(model, assignment, device) if first_stage else None
    tokens = [
        inputs.decode_tokens(model, assignment, device, step) if first_stage else None
        for step in range(steps)
    ]
    runs = config.run.warmup_iters + config.run.timed_iters
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    decode_runs = runs if steps else 0
    bar = tqdm(
        total=runs + decode_runs, desc=f"{layout.mode} run", disable=not env.is_main, delay=2.0
    )
    with bar:
        prefill_s, outputs = timed(lambda: runner.prefill(chunks), runs, sync, bar.update)
        decode_s, decoded = timed(lambda: runner.decode(tokens), decode_runs, sync, bar.update)
    verdict = None
    if verify:
        verdict = verify_outputs(
            config, layout, assignment, env.world_size, outputs, decoded, device
        )
    torch.distributed.barrier()
    warmup = config.run.warmup_iters
    return Measurement(
        torch.cuda.get_device_name(device) if cuda else MOCK_DEVICE,
        tuple(prefill_s[warmup:]),
        tuple(seconds / steps for seconds in decode_s[warmup:]),
        verdict,
    )


def timed(
    step: Callable[[], object], runs: int, sync: Callable[[], None], tick: Callable[[], None]
) -> tuple[list[float], object]:
    """Seconds of each of `runs` calls of `step`, every rank started together and finished
    together; and the last call's result."""
    seconds, result = [], None
    for _ in range(runs):
        torch.distributed.barrier()
        sync()
        start = time.perf_counter()
        result = step()
        sync()
        torch.distributed.barrier()
        seconds.append(time.perf_counter() - start)
        tick()
    return seconds, result
