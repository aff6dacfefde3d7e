"""One calibration: every measurement of this machine, in order, into a HardwareSpec."""

import dataclasses
import os

import torch

from layerwise.calibrate.fit import gemm_shapes, seq_grid, significant, token_grid
from layerwise.calibrate.profile import document, make_provenance, rounded
from layerwise.cli.common import free_port
from layerwise.config.sections import RunConfig
from layerwise.hardware.spec import HardwareSpec


def _effective_cores(ranks: int, slowdown: float) -> float:
    """Cores the ranks effectively share: ranks / how much all of them computing at once
    slows each, no more than the cores present (those when it was not measured: one rank)."""
    present = float(len(os.sched_getaffinity(0)))
    if ranks < 2 or slowdown <= 0:
        return present
    return significant(min(present, ranks / max(slowdown, 1.0)))


def _steps(configs: list[RunConfig], links: bool, engine_points: int) -> int:
    """Progress steps: fixed cost, the GEMM grid, memory and L2, elementwise, attention, each
    model's layer kinds (a gpt block twice: prefill and decode) and the links."""
    shapes = {shape for config in configs for shape in gemm_shapes(config)}
    grid = len(shapes) * max(len(token_grid(config)) for config in configs)
    seqs = {seq_len for config in configs for seq_len in seq_grid(config)}
    roles = sum(
        (2 if c.model.vocab_size else 0) + (2 if c.model.kind == "gpt" else 1) for c in configs
    )
    engines = 2 * engine_points  # each engine at each micro-batch count
    return 3 + grid + len(seqs) + roles + engines + int(links)


def _host_groups(cuda: bool, timeout_s: float):
    """A process group of this process alone (megatron-core's layers need one)."""
    from layerwise.runtime.distributed import DistEnv, init, singleton_groups

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")  # as DeepSpeed's engine reads
    init(DistEnv(0, 0, 1, launched=False), cuda, timeout_s)
    return singleton_groups(1, timeout_s)


def measure(configs: list[RunConfig], command: str, quick: bool) -> tuple[HardwareSpec, dict]:
    """The calibrated profile and its provenance (unmeasured figures from the first config's
    profile)."""
    from layerwise.calibrate.kernels import Progress, local_device, measure_kernels
    from layerwise.calibrate.layers import measure_layer_host
    from layerwise.calibrate.links import local_ranks, measure_link
    from layerwise.calibrate.schedule import MICRO_BATCHES, TIMED_RUNS, measure_schedules
    from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches

    config = configs[0]
    device = local_device(config.run.dtype)
    if not device.cuda:
        apply_cpu_mock_patches()  # one thread per rank, as mock ranks run
    ranks = local_ranks(device.cuda, config.hardware.gpus)
    counts, runs = (MICRO_BATCHES[:2], 5) if quick else (MICRO_BATCHES, TIMED_RUNS)
    progress = Progress(_steps(configs, ranks >= 2, len(counts)))
    kernels = measure_kernels(configs, device, progress)
    base = config.gpu
    intra, slowdown = base.intra_node, 1.0
    if ranks >= 2:
        group = min(ranks, max(2, config.baseline.tensor_parallel))
        slowdown, link = measure_link(ranks, group, free_port(), device.cuda, config.model)
        intra = dataclasses.replace(intra, **link)
        progress.step(f"p2p and all-reduce ({group} of {ranks} local ranks)")
    hardware = dataclasses.replace(
        base,
        **kernels.fields,
        layer_host_us={},  # measured below, priced against this profile's kernels alone
        schedule_us={},
        intra_node=intra,
        host_overlaps_device=device.cuda,
        shared_cores=0.0 if device.cuda else _effective_cores(ranks, slowdown),
    )
    if not device.cuda:  # no datasheet figure for a CPU core: its best measured rate
        best = max(max(rates.values()) for rates in hardware.gemm_tflops.values())
        hardware = dataclasses.replace(hardware, peak_tflops=best)
    groups = _host_groups(device.cuda, config.run.timeout_s)
    host = {}
    try:
        for each in configs:
            host |= measure_layer_host(each, device, hardware, groups, progress)
    finally:
        torch.distributed.destroy_process_group()
    hardware = dataclasses.replace(hardware, layer_host_us=rounded(host))
    so_far = document(hardware, {"device": "calibrating"}, "calibrating")
    schedules = measure_schedules(config, max(1, ranks), so_far, progress, counts, runs)
    hardware = dataclasses.replace(
        hardware, schedule_us={mode: rounded(costs) for mode, costs in schedules.items()}
    )
    return hardware, make_provenance(device, command, kernels, base.name, links=ranks >= 2)
