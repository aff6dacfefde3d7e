"""Runs on every rank under torchrun (4 ranks, CPU mock mode); writes what it saw as JSON.

Scenarios, all in one launch so the ranks import torch, DeepSpeed and megatron-core once:
  pipelines: mock-dense and mock-gpt as 4 stages (1 replica) and 2 stages (2 replicas): every
    last stage compares its outputs with the whole model run in its own process (same weights);
    every rank records the layers it built.
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

from layerwise.config import parse_config  # noqa: E402
from layerwise.plan import make_plan  # noqa: E402
from layerwise.runtime import runner  # noqa: E402
from layerwise.runtime.distributed import init, read_env, singleton_groups  # noqa: E402
from layerwise.runtime.pipe import LayerwisePipelineModule  # noqa: E402
from layerwise.runtime.verify import reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


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


def pipelines(env, groups) -> dict:
    found = {}
    for name in ("mock_dense_layerwise", "mock_gpt_layerwise"):
        for replicas in (1, 2):
            data = json.loads((ROOT / "configs" / f"{name}.json").read_text())
            data["layerwise"]["replicas"] = replicas
            config = parse_config(data, name, ROOT / "configs")
            layout = make_plan(config).layerwise
            where = runner.placement(layout, env)
            engine = runner.build_engine(config, layout, torch.device("cpu"), groups)
            outputs = runner.run_batch(
                engine,
                runner.prefill_inputs(config, layout, where, torch.device("cpu")),
                layout.micro_batches,
            )
            key = f"{name}/stages={len(layout.stages)}"
            built = sorted(int(n) for n, _ in engine.module.named_children() if n.isdigit())
            entry = {
                "built": built,
                "planned": [
                    layout.stages[where.stage].first_layer,
                    layout.stages[where.stage].stop_layer,
                ],
            }
            if where.is_last:
                first = where.replica * layout.micro_batches
                chunks = range(first, first + layout.micro_batches)
                expected = reference(config, layout, chunks, torch.device("cpu"), groups)
                entry["max_abs_error"] = max(
                    float((o - e).abs().max()) for o, e in zip(outputs, expected)
                )
                entry["outputs"] = len(outputs)
                entry["scale"] = max(float(e.abs().max()) for e in expected)
            found[key] = entry
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
    groups = singleton_groups()
    results = {"pipelines": pipelines(env, groups), "profile": profile(env)}
    (args.out / f"rank{env.rank}.json").write_text(json.dumps(results))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
