"""The one interface the session drives: a layout's part on this rank.

`Runner` owns what both layouts share: prefill and decode, where the KV cache starts, and how
decode steps stream. Each layout is one subclass, in one file, that builds its part and runs a
list of micro-batches: `deepspeed_pipe.LayerwisePipeline` (DeepSpeed's pipeline engine over whole
megatron-core layers) and `megatron_tp_pp.MegatronTPxPP` (megatron-core's tensor-parallel layers
and forward-only pipeline schedule). Adding a layout = one file + one line in `build_runner`.
"""

import abc
from typing import TYPE_CHECKING, Literal

import torch

from layerwise.config.sections import RunConfig
from layerwise.planner.assignment import RankAssignment
from layerwise.planner.records import Layout

if TYPE_CHECKING:
    from layerwise.runtime.kv_cache import KVCache

Phase = Literal["prefill", "decode"]
"""Which micro-batches a run carries: prompt chunks, or one new token per sequence."""


class Runner(abc.ABC):
    """This rank's part of a layout (only its layers, or shards of them), with its KV cache.

    Subclasses build the part and implement `run_micro_batches`; prefill and decode are here,
    so both layouts fill and read the cache at the same positions."""

    def __init__(self, assignment: RankAssignment, cache: "KVCache | None"):
        self.assignment, self.cache = assignment, cache

    @abc.abstractmethod
    def run_micro_batches(
        self, inputs: list[torch.Tensor] | None, count: int, phase: Phase
    ) -> list[torch.Tensor] | None:
        """`count` micro-batches through the layout, in order: `inputs` on a first-stage rank
        (None elsewhere); their outputs on the replica's last stage, None elsewhere."""

    def prefill(self, chunks: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """One replica batch through the layout, filling the KV cache from position 0: the
        chunks on a first-stage rank (None elsewhere); each chunk's output on the replica's last
        stage, None elsewhere."""
        count = self.assignment.micro_batches
        self._start_cache(0, count)
        return self.run_micro_batches(chunks, count, "prefill")

    def decode(self, steps: list[list[torch.Tensor] | None]) -> list[list[torch.Tensor]] | None:
        """Every decode step after the prefill: one new token per sequence per step, in the
        plan's decode micro-batches, each attending over the cache of its prompt and steps
        before. Streamed as one run of steps x micro-batches when the plan says so (the cache
        tells the steps apart), else one run per step. Inputs per step on a first-stage rank
        (None elsewhere); outputs per step on the replica's last stage, None elsewhere."""
        count, first_position = self.assignment.decode_micro_batches, self.assignment.seq_len
        if self.assignment.decode_streamed:
            self._start_cache(first_position, count)
            outputs = self.run_micro_batches(_flatten(steps), len(steps) * count, "decode")
            return _per_step(outputs, count)
        found = []
        for index, step in enumerate(steps):
            self._start_cache(first_position + index, count)
            found.append(self.run_micro_batches(step, count, "decode"))
        return None if found and found[0] is None else found

    def _start_cache(self, position: int, micro_batches: int) -> None:
        if self.cache is not None:
            self.cache.start(position, micro_batches)


def _flatten(steps: list[list[torch.Tensor] | None]) -> list[torch.Tensor] | None:
    """Every step's micro-batches in order, or None where this rank reads no input."""
    if not steps or steps[0] is None:
        return None
    return [item for step in steps for item in step]


def _per_step(outputs: list[torch.Tensor] | None, micro_batches: int) -> list | None:
    """A streamed run's outputs cut back into steps of `micro_batches`."""
    if outputs is None:
        return None
    return [outputs[i : i + micro_batches] for i in range(0, len(outputs), micro_batches)]


def build_runner(
    config: RunConfig, layout: Layout, assignment: RankAssignment, device: torch.device
) -> Runner:
    """The layout's runner for this rank: the one place a mode picks its runtime."""
    if layout.mode == "baseline":
        from layerwise.runtime.runners.megatron_tp_pp import MegatronTPxPP

        return MegatronTPxPP(config, layout, assignment, device)
    from layerwise.runtime.runners.deepspeed_pipe import LayerwisePipeline

    return LayerwisePipeline(config, layout, assignment, device)
