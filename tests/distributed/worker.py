"""Runs on every rank under torchrun (4 ranks, CPU mock mode); writes what it saw as JSON.

Scenarios, all in one launch so the ranks import torch, DeepSpeed and megatron-core once:
  layouts: each (config, layout) below built through the runtime's own runner, one prefill batch
    and the config's decode steps run (gpt models: through the KV cache); every rank holding
    outputs compares them with the whole model run in its own process (same weights, same inputs,
    its own cache); every rank records the layers it built. Replica 0's outputs go to rank 0,
    which compares the layouts of one model with each other, greedy tokens included.
  profile: a model of very uneven layers (written here) placed by partition="profile".
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches  # noqa: E402

apply_cpu_mock_patches()

import torch  # noqa: E402
from deepspeed.pipe import LayerSpec  # noqa: E402
from scenarios import LAYOUTS, MODELS  # noqa: E402

from layerwise.config.load import parse_config  # noqa: E402
from layerwise.planner.assignment import assign, output_rank  # noqa: E402
from layerwise.planner.plan import make_plan  # noqa: E402
from layerwise.runtime.distributed import init, read_env, singleton_groups  # noqa: E402
from layerwise.runtime.inputs import decode_tokens, prefill_chunks, token_rows  # noqa: E402
from layerwise.runtime.pipe import LayerwisePipelineModule  # noqa: E402
from layerwise.runtime.runners.base import build_runner  # noqa: E402
from layerwise.runtime.verify import (  # noqa: E402
    chunk_shape,
    decode_shape,
    gather_to_rank0,
    reference,
)

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


def built_layers(runner) -> list[int]:
    module = runner.engine.module if hasattr(runner, "engine") else runner.module
    return sorted(m.index for m in module.modules() if hasattr(m, "index") and hasattr(m, "body"))


def max_error(got: list, expected: list) -> float:
    return max(float((o - e).abs().max()) for o, e in zip(got, expected))


def rows_on_rank0(config, layout, env, outputs, count, shape) -> torch.Tensor | None:
    """Replica 0's outputs on rank 0, as rows in batch order."""
    got = gather_to_rank0(outputs, count, output_rank(layout), env.rank, shape, torch.float32, CPU)
    return None if got is None else torch.cat([token_rows(t, config.model.kind) for t in got])


def layout_scenario(env, name: str, changes: dict, groups) -> tuple[dict, list | None]:
    data = json.loads((ROOT / "configs" / f"{name}.json").read_text())
    for section, values in changes.items():
        data[section].update(values)
    config = parse_config(data, name, ROOT / "configs")
    layout = make_plan(config).layout(config.mode)
    place = layout.grid.place(env.rank)
    assignment = assign(config, layout, env.rank)
    runner = build_runner(config, layout, assignment, CPU)
    first, model = place.stage == 0, config.model
    chunks = prefill_chunks(model, assignment, CPU) if first else None
    outputs = runner.prefill(chunks)
    decoded = runner.decode(
        [
            decode_tokens(model, assignment, CPU, step) if first else None
            for step in range(config.workload.decode_steps)
        ]
    )
    stage = layout.stages[place.stage]
    entry = {
        "built": built_layers(runner),
        "planned": [stage.first_layer, stage.stop_layer],
        "place": [place.replica, place.stage, place.tensor],
        "holds_outputs": outputs is not None,
        "layers": config.model.pipeline_layers,
        "decode_streamed": layout.decode_streamed,
        "stages": len(layout.stages),
    }
    steps = [t for step in decoded for t in step] if outputs is not None else None
    if outputs is not None:
        prefill, decode = reference(model, assignment, CPU, groups)
        entry["outputs"], entry["decode_outputs"] = len(outputs), len(steps)
        entry["max_abs_error"] = max_error(outputs + steps, prefill + decode)
        entry["scale"] = max(float(e.abs().max()) for e in prefill + decode)
    count = config.workload.decode_steps * layout.decode_micro_batches
    prefill_rows = rows_on_rank0(
        config, layout, env, outputs, layout.micro_batches, chunk_shape(model, assignment)
    )
    decode_rows = rows_on_rank0(config, layout, env, steps, count, decode_shape(model, assignment))
    if decode_rows is None:
        return entry, None
    # [1, rows, width] per step: decode rows as [steps, rows, width] so replicas cut each step
    width = decode_rows.shape[-1]
    return entry, (prefill_rows[None], decode_rows.reshape(config.workload.decode_steps, -1, width))


def layouts(env, groups) -> dict:
    """Rank 0 compares replica 0's prefill and decode rows of each layout with the TP2 x PP2
    baseline's (2 replicas: the rows of the first half of the batch), and their argmax tokens."""
    found, rows = {}, {}
    for key, (name, changes) in LAYOUTS.items():
        found[key], rows[key] = layout_scenario(env, name, changes, groups)
    if env.rank != 0:
        return found
    for model in MODELS:
        baseline = rows[f"{model}/baseline/tp=2xpp=2"]
        for key in [key for key in rows if key.startswith(f"{model}/")]:
            compared, error, greedy = [], 0.0, True
            for theirs, ours in zip(baseline, rows[key]):  # [1 or steps, rows, width] each
                common = min(theirs.shape[1], ours.shape[1])
                theirs, ours = theirs[:, :common], ours[:, :common]
                compared.append(common * ours.shape[0])
                error = max(error, float((ours - theirs).abs().max()))
                greedy &= torch.equal(ours.argmax(-1), theirs.argmax(-1))
            found[key].update(
                vs_baseline_tp2xpp2=error, rows_compared=compared, greedy_as_baseline=greedy
            )
    return found


def profile(env) -> dict:
    specs = [LayerSpec(Repeat, repeats, index) for index, repeats in enumerate(UNEVEN)]
    probe = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    module = LayerwisePipelineModule(
        specs, env.world_size, partition_method="profile", probe=probe, training=False
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
