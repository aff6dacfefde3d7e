"""Runs on every rank under torchrun (4 ranks, CPU mock mode); writes what it saw as JSON.

Scenarios, all in one launch so the ranks import torch, DeepSpeed and megatron-core once:
  layouts: each (config, layout) below built through the runtime's own adapter, one prefill batch
    run; every rank holding outputs compares them with the whole model run in its own process
    (same weights, same inputs); every rank records the layers it built. Replica 0's outputs go
    to rank 0, which compares the layouts of one model with each other.
  profile: a model of very uneven layers (written here) placed by partition="profile".
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from layerwise.runtime.mock import apply_cpu_mock_patches  # noqa: E402

apply_cpu_mock_patches()

import torch  # noqa: E402
from deepspeed.pipe import LayerSpec  # noqa: E402
from scenarios import LAYOUTS  # noqa: E402

from layerwise.config import parse_config  # noqa: E402
from layerwise.plan import make_plan  # noqa: E402
from layerwise.runtime.adapter import build_adapter  # noqa: E402
from layerwise.runtime.distributed import init, read_env, singleton_groups  # noqa: E402
from layerwise.runtime.inputs import prefill_chunks, token_rows  # noqa: E402
from layerwise.runtime.pipe import LayerwisePipelineModule  # noqa: E402
from layerwise.runtime.verify import chunk_shape, gather_to_rank0, output_rank, reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


class Repeat(torch.nn.Module):
    """`repeats` matmuls with one 32x32 weight: the same parameter count, uneven cost."""

    def __init__(self, repeats: int, index: int):
        super().__init__()
        generator = torch.Generator().manual_seed(index)
        self.weight = torch.nn.Parameter(
            torch.randn(32, 32, generator=generator) / 32**0.5, requires_grad=False
        )
        self.repeats = repeats

    def forward(self, hidden):
        for _ in range(self.repeats):
            hidden = torch.tanh(hidden @ self.weight)
        return hidden


UNEVEN = [60, 60, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]


def built_layers(adapter) -> list[int]:
    module = adapter.engine.module if hasattr(adapter, "engine") else adapter.module
    return sorted(m.index for m in module.modules() if hasattr(m, "index") and hasattr(m, "body"))


def layout_scenario(env, name: str, changes: dict, groups) -> tuple[dict, list | None]:
    data = json.loads((ROOT / "configs" / f"{name}.json").read_text())
    for section, values in changes.items():
        data[section].update(values)
    config = parse_config(data, name, ROOT / "configs")
    layout = make_plan(config).layout(config.mode)
    place = layout.grid.place(env.rank)
    adapter = build_adapter(config, layout, place, CPU)
    chunks = prefill_chunks(config, layout, place.replica, CPU) if place.stage == 0 else None
    outputs = adapter.prefill(chunks)
    stage = layout.stages[place.stage]
    entry = {
        "built": built_layers(adapter),
        "planned": [stage.first_layer, stage.stop_layer],
        "place": [place.replica, place.stage, place.tensor],
        "holds_outputs": outputs is not None,
    }
    if outputs is not None:
        mine = prefill_chunks(config, layout, place.replica, CPU)
        expected = reference(config, mine, CPU, groups)
        entry["outputs"] = len(outputs)
        entry["max_abs_error"] = max(float((o - e).abs().max()) for o, e in zip(outputs, expected))
        entry["scale"] = max(float(e.abs().max()) for e in expected)
    # replica 0's whole batch on rank 0, as token rows, for the cross-layout comparison
    got = gather_to_rank0(
        outputs,
        layout.micro_batches,
        output_rank(layout),
        env.rank,
        chunk_shape(config, layout),
        torch.float32,
        CPU,
    )
    rows = None if got is None else torch.cat([token_rows(t, config.model.kind) for t in got])
    return entry, rows


def layouts(env, groups) -> dict:
    found, rows = {}, {}
    for key, (name, changes) in LAYOUTS.items():
        found[key], batch = layout_scenario(env, name, changes, groups)
        rows[key] = batch
    if env.rank == 0:  # outputs of one model's layouts against each other (replica 0's batch)
        for model in ("mock_dense", "mock_gpt"):
            keys = [key for key in rows if key.startswith(f"{model}/")]
            baseline = rows[f"{model}/baseline/tp=2xpp=2"]
            for key in keys:
                other = rows[key]
                common = min(len(baseline), len(other))  # 2 replicas: half the batch each
                found[key]["vs_baseline_tp2xpp2"] = float(
                    (other[:common] - baseline[:common]).abs().max()
                )
                found[key]["rows_compared"] = common
    return found


def profile(env) -> dict:
    specs = [LayerSpec(Repeat, repeats, index) for index, repeats in enumerate(UNEVEN)]
    probe = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    module = LayerwisePipelineModule(
        specs, partition="profile", probe=probe, num_stages=env.world_size
    )
    built = sorted(int(n) for n, _ in module.named_children() if n.isdigit())
    return {
        "boundaries": module.parts,
        "seconds": list(module.profile.seconds),
        "built": built,
        "parameters": [32 * 32] * len(UNEVEN),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    env = read_env()
    init(env, cuda=False, timeout_s=120)
    groups = singleton_groups(env.world_size, 120)
    results = {"layouts": layouts(env, groups), "profile": profile(env)}
    (args.out / f"rank{env.rank}.json").write_text(json.dumps(results))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
