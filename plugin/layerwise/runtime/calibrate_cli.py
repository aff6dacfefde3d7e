"""`launch/calibrate.py --config F [--out PROFILE.yaml]`: measure this machine for the config's
model shapes and write a hardware profile that records its provenance.

Measured: the GEMM grid, per-kernel fixed cost and floors, weight streaming from memory and
from L2, elementwise and attention rates (runtime/calibrate.py), the host time of a layer call
(runtime/calibrate_layers.py) and, with several local ranks, p2p and all-reduce
(runtime/calibrate_links.py). Copied from the config's profile: datasheet figures, capacity,
reserve, node size and the inter-node link.
"""

import argparse
import dataclasses
import os
import re
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from layerwise.cli import write_atomically
from layerwise.compare import free_port
from layerwise.config import RunConfig, load_config
from layerwise.errors import ConfigError
from layerwise.fit import gemm_shapes, seq_grid, significant, token_grid
from layerwise.runtime import logs
from layerwise.specs import HardwareSpec, load_hardware

if TYPE_CHECKING:  # imported at run time after the CPU mock patches
    from layerwise.runtime.calibrate import Device, Kernels

EXIT_USAGE = 2
MEASURED_DIR = Path(__file__).resolve().parents[3] / "configs" / "hardware" / "measured"
COPIED = (
    "peak_tflops",
    "hbm_datasheet_gbs",
    "hbm_capacity_gib",
    "reserved_gib",
    "gpus_per_node",
    "inter_node",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch/calibrate.py",
        description="Measure this machine (its first CUDA GPU, else the CPU as mock ranks use "
        "it) for the config's model shapes and write a hardware profile.",
        epilog="exit codes: 0 ok, 1 internal error, 2 bad input",
    )
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        action="append",
        help="run config (JSON) whose model shapes to measure; repeat for several models",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="profile to write (default: configs/hardware/measured/<device>.yaml)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer engine runs (2 micro-batch counts, 5 timed runs each): a smoke test, "
        "noisier figures",
    )
    return parser.parse_args(argv)


def _effective_cores(ranks: int, slowdown: float) -> float:
    """Cores the ranks effectively share: ranks / how much all of them computing at once
    slows each, no more than the cores present (those when it was not measured: one rank)."""
    present = float(len(os.sched_getaffinity(0)))
    if ranks < 2 or slowdown <= 0:
        return present
    return significant(min(present, ranks / max(slowdown, 1.0)))


def _rounded(table: dict[str, float]) -> dict[str, float]:
    return {key: significant(value) for key, value in table.items()}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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
    from layerwise.runtime.calibrate import Progress, local_device, measure_kernels
    from layerwise.runtime.calibrate_layers import measure_layer_host
    from layerwise.runtime.calibrate_links import local_ranks, measure_link
    from layerwise.runtime.calibrate_schedule import MICRO_BATCHES, TIMED_RUNS, measure_schedules
    from layerwise.runtime.mock import apply_cpu_mock_patches

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
    hardware = dataclasses.replace(hardware, layer_host_us=_rounded(host))
    so_far = document(hardware, {"device": "calibrating"}, "calibrating")
    schedules = measure_schedules(config, max(1, ranks), so_far, progress, counts, runs)
    hardware = dataclasses.replace(
        hardware, schedule_us={mode: _rounded(costs) for mode, costs in schedules.items()}
    )
    return hardware, _provenance(device, command, kernels, base.name, links=ranks >= 2)


def _provenance(
    device: "Device", command: str, kernels: "Kernels", base_name: str, links: bool
) -> dict:
    """What the profile records of its making: device, date, versions, command, which fields
    were measured and which copied, and the L2 experiment's raw timings."""
    from layerwise.runtime.calibrate import device_name

    cpu = not device.cuda
    measured = set(kernels.fields) | {"layer_host_us", "schedule_us"}
    if cpu:
        measured.add("shared_cores")
    return {
        "device": device_name(device),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": str(torch.__version__),
        "command": command,
        "dtype": str(device.dtype).removeprefix("torch."),
        "threads_per_rank": torch.get_num_threads(),
        "measured_by": "launch/calibrate.py",
        "measured": sorted(measured)
        + (["intra_node"] if links else [])
        + (["peak_tflops (best GEMM rate measured)"] if cpu else []),
        "copied_from_profile": f"{base_name}: "
        + ", ".join(
            [field for field in COPIED if not cpu or field != "peak_tflops"]
            + ([] if links else ["intra_node"])
        ),
        "l2_experiment": {
            "weight_bytes": kernels.l2_weight_bytes,
            "resident_us": significant(kernels.l2_resident_s * 1e6),
            "evicted_us": significant(kernels.l2_evicted_s * 1e6),
            "evicted_over_resident": significant(kernels.l2_evicted_s / kernels.l2_resident_s),
            "priced": kernels.fields["l2_gbs"] > 0,
        },
    }


def document(hardware: HardwareSpec, provenance: dict, name: str) -> dict:
    """The profile as YAML data, in HardwareSpec's field order."""
    data = dataclasses.asdict(hardware)
    data.update(name=name, provenance=provenance)
    data["description"] = f"{provenance['device']}, measured by launch/calibrate.py"
    return data


def write_profile(path: Path, data: dict) -> None:
    header = (
        f"# Written by launch/calibrate.py on {data['provenance']['device']}, "
        f"{data['provenance']['date']}.\n# Every figure is measured except those listed under "
        "provenance.copied_from_profile.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (header + body).encode())


def summary(hardware: HardwareSpec, provenance: dict) -> str:
    link, l2 = hardware.intra_node, provenance["l2_experiment"]
    best = max(max(rates.values()) for rates in hardware.gemm_tflops.values())
    verdict = "priced" if l2["priced"] else "not priced (below the 10% threshold)"
    return "\n".join(
        [
            f"device: {provenance['device']} ({provenance['dtype']}, torch {provenance['torch']})",
            f"GEMM: {len(hardware.gemm_tflops)} shapes, best {best:.4g} TFLOP/s; fixed cost "
            f"{hardware.kernel_fixed_us:.3g} us, floors {hardware.gemm_floor_us:.3g} / "
            f"{hardware.kernel_floor_us:.3g} us",
            f"memory: weights {hardware.hbm_gbs:.4g} GB/s, elementwise "
            f"{hardware.elementwise_gbs:.4g} GB/s; attention up to "
            f"{hardware.attention_tflops:.4g} TFLOP/s",
            f"L2: a {l2['weight_bytes'] / 2**10:.0f} KiB weight at M=1 takes "
            f"{l2['resident_us']:.4g} us resident, {l2['evicted_us']:.4g} us evicted "
            f"(x{l2['evicted_over_resident']:.3g}): {verdict}",
            "host time per layer call (us): "
            + ", ".join(f"{role} {us:.4g}" for role, us in hardware.layer_host_us.items()),
            "pipeline engines (us per run + per micro-batch): "
            + ", ".join(
                f"{mode} {costs['run']:.4g} + {costs['micro_batch']:.4g}"
                for mode, costs in hardware.schedule_us.items()
            ),
            f"shared cores (CPU ranks): {hardware.shared_cores:.3g}",
            f"links: p2p {link.p2p_latency_us:.4g} us + {link.p2p_gbs:.3g} GB/s; all-reduce "
            f"floor {link.allreduce_latency_us:.4g} us, up to {link.allreduce_busbw_gbs:.3g} "
            "GB/s bus bandwidth",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(verbose=False)
    try:
        configs = [load_config(path) for path in args.config]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.out and (args.out.suffix not in (".yaml", ".yml") or not args.out.parent.is_dir()):
        print(f"error: --out {args.out}: needs a .yaml file in an existing folder", file=sys.stderr)
        return EXIT_USAGE
    command = shlex.join(["python", "launch/calibrate.py", *(argv or sys.argv[1:])])
    hardware, provenance = measure(configs, command, args.quick)
    name = args.out.stem if args.out else _slug(provenance["device"])
    out = args.out or MEASURED_DIR / f"{name}.yaml"
    write_profile(out, document(hardware, provenance, name))
    load_hardware(out)  # what was written loads back
    print(summary(hardware, provenance))
    print(f"wrote {out}")
    return 0
