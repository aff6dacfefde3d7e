"""The one interface the session drives: a layout's part on this rank.

Each layout is one file: `deepspeed_pipe.LayerwisePipeline` (DeepSpeed's pipeline engine over
whole megatron-core layers) and `megatron_tp_pp.MegatronTPxPP` (megatron-core's tensor-parallel
layers and forward-only pipeline schedule). Adding a layout = one file + one line below.
"""

from collections.abc import Callable
from typing import Protocol

import torch

from layerwise.config.sections import RunConfig
from layerwise.planner.grid import Place
from layerwise.planner.layouts import Layout
from layerwise.runtime.kv_cache import KVCache


class Adapter(Protocol):
    """Built from a plan's layout for one rank (only that rank's layers, or shards of them)."""

    def prefill(self, chunks: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """One replica batch through the layout, filling the KV cache from position 0: the
        chunks on a first-stage rank (None elsewhere); each chunk's output on the replica's last
        stage, None elsewhere."""

    def decode(self, steps: list[list[torch.Tensor] | None]) -> list[list[torch.Tensor]] | None:
        """Every decode step after the prefill: one new token per sequence per step, in the
        plan's decode micro-batches, each attending over the cache of its prompt and steps
        before. Streamed as one run of steps x micro-batches when the plan says so, else one
        run per step. Inputs per step on a first-stage rank (None elsewhere); outputs per step
        on the replica's last stage, None elsewhere."""


def flatten(steps: list[list[torch.Tensor] | None]) -> list[torch.Tensor] | None:
    """Every step's micro-batches in order, or None where this rank reads no input."""
    if not steps or steps[0] is None:
        return None
    return [item for step in steps for item in step]


def per_step(outputs: list[torch.Tensor] | None, micro_batches: int) -> list | None:
    """A streamed run's outputs cut back into steps of `micro_batches`."""
    if outputs is None:
        return None
    return [outputs[i : i + micro_batches] for i in range(0, len(outputs), micro_batches)]


def run_decode(
    run: Callable, steps: list, layout: Layout, first_position: int, cache: KVCache | None
) -> list | None:
    """`run(inputs, micro_batches)` over all steps at once when the plan streams decode, else
    once per step, the KV cache (if any) started at each run's first position; outputs per step
    (None off the last stage)."""
    count = layout.decode_micro_batches

    def start(position: int) -> None:
        if cache is not None:
            cache.start(position, count)

    if layout.decode_streamed:
        start(first_position)
        return per_step(run(flatten(steps), len(steps) * count), count)
    found = []
    for index, step in enumerate(steps):
        start(first_position + index)
        found.append(run(step, count))
    return None if found and found[0] is None else found


def build_adapter(config: RunConfig, layout: Layout, place: Place, device: torch.device) -> Adapter:
    if layout.mode == "baseline":
        from layerwise.runtime.runners.megatron_tp_pp import MegatronTPxPP

        return MegatronTPxPP(config, layout, place, device)
    from layerwise.runtime.runners.deepspeed_pipe import LayerwisePipeline

    return LayerwisePipeline(config, layout, place, device)
