"""Runs on 2 ranks under torchrun (CPU mock mode): examples/pipeline_swap.py's model trained
with stock PipelineModule and with LayerwisePipelineModule for each partition method, in one
launch; writes each rank's parts, losses and tied embedding weight as JSON."""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugin"), str(ROOT / "examples")]

from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches  # noqa: E402

apply_cpu_mock_patches()

import deepspeed  # noqa: E402
import pipeline_swap  # noqa: E402
import torch  # noqa: E402

STOCK_METHODS = ("parameters", "uniform", "type:Linear")


def variants(probe) -> dict:
    """name -> (module kind, partition keywords); 'boundaries' are filled in from stock runs."""
    found = {}
    for method in STOCK_METHODS:
        found[f"stock/{method}"] = ("stock", {"partition_method": method})
        found[f"layerwise/{method}"] = ("layerwise", {"partition_method": method})
    found["layerwise/profile"] = ("layerwise", {"partition_method": "profile", "probe": probe})
    found["layerwise/layerwise"] = ("layerwise", {"partition_method": "layerwise"})
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    results = {}
    probe = next(pipeline_swap.batches(0))[0]
    for name, (kind, partition) in variants(probe).items():
        results[name] = pipeline_swap.train(pipeline_swap.build(kind, 2, **partition), steps=3)
    stock_uniform = results["stock/uniform"]["parts"]
    results["layerwise/boundaries"] = pipeline_swap.train(
        pipeline_swap.build("layerwise", 2, boundaries=stock_uniform), steps=3
    )
    rank = deepspeed.comm.get_rank()
    (args.out / f"rank{rank}.json").write_text(json.dumps(results))
    deepspeed.comm.barrier()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
