"""The same layers, chunks and decode steps as launch/infer.py, in a plain loop in one process
(no DeepSpeed): the reference for the runtime's overhead. Prints tokens/s and TPOT.

Run: python benchmarks/raw_loop.py --config configs/gpu1_dense_layerwise.json [--json OUT]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from layerwise.config import load_config
from layerwise.plan import make_plan
from layerwise.runtime.distributed import init, read_env, singleton_groups
from layerwise.runtime.inputs import decode_tokens, prefill_chunks
from layerwise.runtime.mock import apply_cpu_mock_patches
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = load_config(args.config)
    layout = make_plan(config).layerwise
    cuda = torch.cuda.is_available()
    if not cuda:
        apply_cpu_mock_patches()
    init(read_env(), cuda, config.run.timeout_s)
    device = torch.device("cuda") if cuda else torch.device("cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = TORCH_DTYPES[config.run.dtype]
    groups = singleton_groups(1, config.run.timeout_s)
    layers = [
        PresetLayer(config.model, i, config.run.seed, dtype, device, groups)
        for i in range(config.model.num_layers)
    ]
    chunks = prefill_chunks(config, layout, 0, device)
    steps = decode_tokens(config, layout, 0, device)

    def timed(inputs) -> list[float]:
        seconds = []
        for _ in range(config.run.warmup_iters + config.run.timed_iters):
            sync()
            start = time.perf_counter()
            with torch.no_grad():
                for hidden in inputs:
                    for layer in layers:
                        hidden = layer(hidden)
            sync()
            seconds.append(time.perf_counter() - start)
        return seconds[config.run.warmup_iters :]

    prefill = statistics.median(timed(chunks))
    figures = {"tps": layout.chunk_tokens * len(chunks) / prefill, "prefill_s": prefill}
    if config.model.kind == "dense":
        figures["tpot_ms"] = statistics.median(timed(steps)) * 1e3
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
