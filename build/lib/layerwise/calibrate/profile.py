"""A measured HardwareSpec as a profile YAML with its provenance, and its summary."""

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import torch
import yaml

from layerwise.calibrate.fit import significant
from layerwise.calibrate.kernels import Device, Kernels
from layerwise.cli.common import write_atomically
from layerwise.hardware.spec import HardwareSpec

COPIED = (
    "peak_tflops",
    "hbm_datasheet_gbs",
    "hbm_capacity_gib",
    "reserved_gib",
    "gpus_per_node",
    "inter_node",
)


def rounded(table: dict[str, float]) -> dict[str, float]:
    return {key: significant(value) for key, value in table.items()}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def make_provenance(
    device: "Device", command: str, kernels: "Kernels", base_name: str, links: bool
) -> dict:
    """What the profile records of its making: device, date, versions, command, which fields
    were measured and which copied, and the L2 experiment's raw timings."""
    from layerwise.calibrate.kernels import device_name

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
