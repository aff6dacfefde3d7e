"""Predicted against measured on cases the calibration never ran: both layouts, prefill and
decode, several chunk sizes and stage counts, through the real runtimes (launch/infer.py).

Each case is a shipped config with a few keys changed; the profile is the configs' own
(cpu-mock, or h200 on a GPU), which launch/calibrate.py measured from kernels, layer calls and
links, never from these runs. Prints each figure's error (predicted / measured - 1) and the
median and max |error|.

Run: python benchmarks/predict_vs_measure.py [--set cpu|gpu] [--profile P] [--json OUT]
     (cpu: 12 runs on 4 gloo ranks, about 5 minutes on 2 cores; gpu: 12 runs on one GPU)
"""

import argparse
import copy
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from layerwise.cli.common import run_quietly

ROOT = Path(__file__).resolve().parents[1]
FAST_RUN = {"warmup_iters": 2, "timed_iters": 7, "timeout_s": 120.0}
CASE_TIMEOUT_S = 300
WIDE_GPT = {"preset": "mock-gpt", "hidden": 256, "heads": 4, "head_dim": 64, "ffn_hidden": 512}

# (name, shipped config, changes); every run gives a prefill and a decode figure
CPU_CASES = [
    ("dense TP2xPP2", "mock_dense_baseline", {}),
    ("dense 4 stages, 8 chunks", "mock_dense_layerwise", {"layerwise": {"micro_batches": 8}}),
    (
        "dense 2x2 stages, 2 chunks",
        "mock_dense_layerwise",
        {"layerwise": {"replicas": 2, "micro_batches": 2}},
    ),
    ("gpt TP2xPP2, 2 micro-batches", "mock_gpt_baseline", {"baseline": {"micro_batches": 2}}),
    (
        "gpt TP4xPP1",
        "mock_gpt_baseline",
        {"baseline": {"tensor_parallel": 4, "pipeline_parallel": 1}},
    ),
    (
        "gpt 4 stages, streamed decode",
        "mock_gpt_layerwise",
        {"layerwise": {"micro_batches": 2, "decode_micro_batches": 4}},
    ),
    ("gpt 4 replicas x 1 stage", "mock_gpt_layerwise", {"layerwise": {"replicas": 4}}),
    (
        "wide gpt 2x2 stages (uncalibrated shapes)",
        "mock_gpt_layerwise",
        {"model": WIDE_GPT, "layerwise": {"replicas": 2, "micro_batches": 4}},
    ),
    (
        "llama TP1xPP4",
        "mock_llama_baseline",
        {"baseline": {"tensor_parallel": 1, "pipeline_parallel": 4}},
    ),
    ("llama 2x2 stages", "mock_llama_layerwise", {"layerwise": {"replicas": 2}}),
    ("llama 4 stages, 4 chunks", "mock_llama_layerwise", {"layerwise": {"micro_batches": 4}}),
    (
        "dense TP1xPP4, 4 micro-batches",
        "mock_dense_baseline",
        {"baseline": {"tensor_parallel": 1, "pipeline_parallel": 4, "micro_batches": 4}},
    ),
]
GPU_CASES = [
    ("seed-dense, 1 stage, 8 chunks", "gpu1_dense_layerwise", {}),
    (
        "seed-dense, 1 stage, 32 chunks",
        "gpu1_dense_layerwise",
        {"layerwise": {"micro_batches": 32}},
    ),
    ("seed-dense TP1xPP1", "gpu1_dense_layerwise", {"mode": "baseline"}),
    ("seed-gpt, 1 stage", "gpu1_gpt_layerwise", {}),
    (
        "seed-gpt TP1xPP1, 2 decode micro-batches",
        "gpu1_gpt_layerwise",
        {"mode": "baseline", "baseline": {"decode_micro_batches": 2}},
    ),
    ("llama-3.1-8b, 1 stage", "gpu1_llama8b_layerwise", {}),
    ("llama-3.1-8b TP1xPP1", "gpu1_llama8b_layerwise", {"mode": "baseline"}),
    ("seed-dense, 1 stage, 2 chunks", "gpu1_dense_layerwise", {"layerwise": {"micro_batches": 2}}),
    ("seed-gpt, 1 stage, 2 chunks", "gpu1_gpt_layerwise", {"layerwise": {"micro_batches": 2}}),
    (
        "seed-gpt, 1 stage, 4 sequences",
        "gpu1_gpt_layerwise",
        {"workload": {"batch_size": 4}, "layerwise": {"micro_batches": 4}},
    ),
    (
        "llama-3.1-8b, 1 stage, 4 decode micro-batches",
        "gpu1_llama8b_layerwise",
        {"layerwise": {"decode_micro_batches": 4}},
    ),
    (
        "llama-3.1-8b, 1 stage, 4 chunks",
        "gpu1_llama8b_layerwise",
        {"layerwise": {"micro_batches": 4}},
    ),
]


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied key by key (objects merged, the rest replaced)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "model":
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def case_config(stem: str, changes: dict, profile: str | None) -> dict:
    data = merged(json.loads((ROOT / "configs" / f"{stem}.json").read_text()), changes)
    data["run"] = {**data.get("run", {}), **FAST_RUN}
    if profile:
        data["hardware"]["profile"] = profile
    return data


def run_case(config: dict, folder: Path, name: str) -> dict:
    """One launch/infer.py run on the config's world size (torchrun); its results JSON."""
    try:
        return run_quietly(config, folder, name, CASE_TIMEOUT_S)
    except RuntimeError as failure:
        sys.exit(f"case {name!r}: {failure}")


def rows_of(name: str, result: dict) -> list[dict]:
    """The case's prefill tokens/s and TPOT, predicted and measured."""
    predicted, measured = result["predicted"], result["measured"]
    rows = [{"case": name, "figure": "prefill tok/s", "predicted": predicted["tps"],
             "measured": measured["tps"]}]  # fmt: skip
    if measured.get("tpot_ms"):
        rows.append({"case": name, "figure": "TPOT ms", "predicted": predicted["tpot_ms"],
                     "measured": measured["tpot_ms"]})  # fmt: skip
    for row in rows:
        row["layout"] = result["layout"]
        row["error"] = row["predicted"] / row["measured"] - 1
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'case':<44}{'figure':<15}{'predicted':>12}{'measured':>12}{'error':>9}"]
    for row in rows:
        lines.append(
            f"{row['case']:<44}{row['figure']:<15}{row['predicted']:>12,.5g}"
            f"{row['measured']:>12,.5g}{row['error']:>+9.1%}"
        )
    errors = [abs(row["error"]) for row in rows]
    lines.append(
        f"{len(rows)} figures: median |error| {statistics.median(errors):.1%}, "
        f"max {max(errors):.1%}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("cpu", "gpu"), help="default: gpu if CUDA is present")
    parser.add_argument("--profile", help="hardware profile for every case (default: configs')")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    if args.set is None:
        import torch

        args.set = "gpu" if torch.cuda.is_available() else "cpu"
    cases = CPU_CASES if args.set == "cpu" else GPU_CASES
    cases = [case for case in cases if not args.only or args.only in case[0]]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, (name, stem, changes) in enumerate(cases, 1):
            print(f"[{number}/{len(cases)}] {name}", file=sys.stderr, flush=True)
            config = case_config(stem, changes, args.profile)
            for row in rows_of(name, run_case(config, Path(scratch), f"case{number}")):
                rows.append({**row, "config": config})
    print(table(rows))
    if args.json:
        errors = [abs(row["error"]) for row in rows]
        summary = {
            "measured_by": "benchmarks/predict_vs_measure.py",
            "command": shlex.join(["python", *sys.argv]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
            "median_abs_error": statistics.median(errors),
            "max_abs_error": max(errors),
        }
        args.json.write_text(json.dumps({**summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
