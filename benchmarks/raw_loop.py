"""The same layers, chunks, KV cache and decode steps as launch/infer.py, in a plain loop in one
process (no DeepSpeed, no megatron schedule): the reference for the runtime's overhead. Prints
prefill tokens/s and TPOT (median decode step after the warm-up steps).

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
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, stage_cache


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
    cache = stage_cache(config, layout, device)
    layers = [
        PresetLayer(config.model, i, config.run.seed, dtype, device, groups, cache)
        for i in range(config.model.pipeline_layers)
    ]
    chunks = prefill_chunks(config, layout, 0, device)
    steps = [
        decode_tokens(config, layout, 0, device, step)
        for step in range(config.workload.decode_steps)
    ]

    def timed(inputs, position: int) -> float:
        """Seconds to run `inputs` (micro-batches) through every layer from cache `position`."""
        if cache is not None:
            cache.start(position, len(inputs))
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            for hidden in inputs:
                for layer in layers:
                    hidden = layer(hidden)
        sync()
        return time.perf_counter() - start

    warmup = config.run.warmup_iters
    prefill = [timed(chunks, 0) for _ in range(warmup + config.run.timed_iters)][warmup:]
    seq_len = config.workload.seq_len
    decode = [timed(tokens, seq_len + step) for step, tokens in enumerate(steps)][warmup:]
    figures = {
        "tps": layout.chunk_tokens * len(chunks) / statistics.median(prefill),
        "prefill_s": statistics.median(prefill),
        "tpot_ms": statistics.median(decode) * 1e3 if decode else None,
    }
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
