"""The same layers, chunks, KV cache and decode steps as launch/infer.py, in a plain loop in one
process (no DeepSpeed, no megatron schedule): the reference for the runtime's overhead. Prints
prefill tokens/s and TPOT (the median timed run of all decode steps, per step), timed as the
runtime times them.

Run: python benchmarks/raw_loop.py --config configs/gpu1_dense_layerwise.json [--json OUT]
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from layerwise.config.load import load_config
from layerwise.config.sections import RunConfig
from layerwise.planner.assignment import RankAssignment, assign
from layerwise.planner.plan import make_plan
from layerwise.planner.records import Layout
from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches
from layerwise.runtime.distributed import init, read_env, singleton_groups
from layerwise.runtime.inputs import decode_tokens, prefill_chunks
from layerwise.runtime.kv_cache import KVCache
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, stage_cache


@dataclass(frozen=True)
class OneProcess:
    """A config's model set up in this one process: its layer-wise layout's chunking (rank 0's
    assignment: replica 0), the device, a sync, process groups of this rank alone, replica 0's
    prefill chunks and the inputs of every decode step."""

    config: RunConfig
    layout: Layout
    assignment: RankAssignment
    device: torch.device
    sync: Callable[[], None]
    groups: object
    chunks: list
    steps: list


def one_process(config_path: Path) -> OneProcess:
    config = load_config(config_path)
    layout = make_plan(config).layerwise
    assignment = assign(config, layout, 0)
    cuda = torch.cuda.is_available()
    if not cuda:
        apply_cpu_mock_patches()
    init(read_env(), cuda, config.run.timeout_s)
    device = torch.device("cuda") if cuda else torch.device("cpu")
    steps = [
        decode_tokens(config.model, assignment, device, step)
        for step in range(config.workload.decode_steps)
    ]
    return OneProcess(
        config,
        layout,
        assignment,
        device,
        torch.cuda.synchronize if cuda else (lambda: None),
        singleton_groups(1, config.run.timeout_s),
        prefill_chunks(config.model, assignment, device),
        steps,
    )


def build_layers(run: OneProcess) -> tuple[list, KVCache | None]:
    """Every pipeline layer at TP=1 with one KV cache (None for dense models)."""
    config = run.config
    cache = stage_cache(config.model, run.assignment, run.device)
    dtype = TORCH_DTYPES[config.run.dtype]
    layers = [
        PresetLayer(config.model, i, config.run.seed, dtype, run.device, run.groups, cache)
        for i in range(config.model.pipeline_layers)
    ]
    return layers, cache


def run_layers(layers, inputs) -> list[torch.Tensor]:
    """Each micro-batch of `inputs` through every layer, in order; their outputs."""
    outputs = []
    with torch.no_grad():
        for hidden in inputs:
            for layer in layers:
                hidden = layer(hidden)
            outputs.append(hidden)
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = one_process(args.config)
    config, layout, chunks, steps, sync = run.config, run.layout, run.chunks, run.steps, run.sync
    layers, cache = build_layers(run)

    def forward(inputs, position: int) -> None:
        """`inputs` (micro-batches) through every layer from cache `position`."""
        if cache is not None:
            cache.start(position, len(inputs))
        run_layers(layers, inputs)

    def timed(work: Callable[[], None]) -> float:
        sync()
        start = time.perf_counter()
        work()
        sync()
        return time.perf_counter() - start

    def decode() -> None:
        for step, tokens in enumerate(steps):
            forward(tokens, config.workload.seq_len + step)

    warmup, runs = config.run.warmup_iters, config.run.warmup_iters + config.run.timed_iters
    prefill = [timed(lambda: forward(chunks, 0)) for _ in range(runs)][warmup:]
    # like the runtime: whole runs of every step (each step's context is a new attention shape,
    # whose kernel plan the warm-up runs build), per step
    decode_s = [timed(decode) / len(steps) for _ in range(runs if steps else 0)][warmup:]
    figures = {
        "tps": layout.chunk_tokens * len(chunks) / statistics.median(prefill),
        "prefill_s": statistics.median(prefill),
        "tpot_ms": statistics.median(decode_s) * 1e3 if decode_s else None,
    }
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
