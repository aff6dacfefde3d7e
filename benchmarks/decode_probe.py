"""Where a decode step's time goes, and how repeatable bf16 outputs are, in one process.

For a config's model on this device (all layers, one KV cache, the plan's layer-wise chunking):
  repeat: the whole prefill + decode twice with freshly built layers; the largest difference
    (0 means bitwise repeatable) and, with a vocabulary, the smallest top-1/top-2 logit margin
    (a greedy token flips when an error exceeds it);
  timing: decode steps each followed by a device sync, then all steps queued without one
    (the gap is host time the device waits for);
  profile: one decode step under torch.profiler: host and device totals, top device kernels.

Run: python benchmarks/decode_probe.py --config configs/gpu1_llama8b_layerwise.json [--json F]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from raw_loop import OneProcess, build_layers, one_process, run_layers


def generate(run: OneProcess, layers, cache) -> list[torch.Tensor]:
    """Prefill, then every decode step; the outputs in order."""
    if cache is not None:
        cache.start(0, len(run.chunks))
    outputs = run_layers(layers, run.chunks)
    for step, tokens in enumerate(run.steps):
        if cache is not None:
            cache.start(run.config.workload.seq_len + step, len(tokens))
        outputs += run_layers(layers, tokens)
    return outputs


def margin(logits: list[torch.Tensor]) -> float:
    """Smallest gap between the largest and second-largest logit of any row."""
    gaps = [(t.float().topk(2, dim=-1).values.diff(dim=-1)).abs().min() for t in logits]
    return float(min(gaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = one_process(args.config)
    config, steps, sync, cuda = run.config, run.steps, run.sync, run.device.type == "cuda"
    layers, cache = build_layers(run)
    first = generate(run, layers, cache)
    again = generate(run, *build_layers(run))
    figures = {
        "repeat_max_abs_diff": max(
            float((a.float() - b.float()).abs().max()) for a, b in zip(first, again)
        ),
        "output_max_abs": max(float(a.float().abs().max()) for a in first),
    }
    if config.model.vocab_size:
        figures["min_top2_margin"] = margin(first)
    seq_len = config.workload.seq_len
    synced = []
    for step, tokens in enumerate(steps):
        cache.start(seq_len + step, len(tokens)) if cache is not None else None
        sync()
        start = time.perf_counter()
        run_layers(layers, tokens)
        sync()
        synced.append(time.perf_counter() - start)
    sync()
    start = time.perf_counter()
    for step, tokens in enumerate(steps):
        cache.start(seq_len + step, len(tokens)) if cache is not None else None
        run_layers(layers, tokens)
    queued_end = time.perf_counter()
    sync()
    done = time.perf_counter()
    figures |= {
        "decode_step_synced_ms": statistics.median(synced[2:] or synced) * 1e3,
        "decode_step_queued_ms": (done - start) / len(steps) * 1e3,
        "decode_host_per_step_ms": (queued_end - start) / len(steps) * 1e3,
    }
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    cache.start(seq_len, len(steps[0])) if cache is not None else None
    with torch.profiler.profile(activities=activities) as profiler:
        run_layers(layers, steps[0])
        sync()
    events = profiler.key_averages()
    device_us = sum(e.self_device_time_total for e in events) if cuda else 0.0
    figures["profiled_step_device_ms"] = device_us / 1e3
    figures["top_device_kernels"] = (
        [
            (e.key[:60], round(e.self_device_time_total / 1e3, 3), e.count)
            for e in sorted(events, key=lambda e: -e.self_device_time_total)[:8]
        ]
        if cuda
        else []
    )
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
