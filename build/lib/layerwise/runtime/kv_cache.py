"""This rank's KV cache: megatron-core's StaticInferenceContext, told which rows and position
each micro-batch writes.

megatron's attention keeps one [max length, max batch, kv heads, head dim] K and V buffer per
layer in the context, writes a forward's keys at (`sequence_len_offset`, `batch_size_offset`)
and attends over positions [0, offset + new tokens). What it lacks for a pipeline is the
micro-batch: both schedules (DeepSpeed's and megatron's forward-only) run a stage's micro-batches
in order, so a layer's k-th forward since `start` is micro-batch k % M of step k // M, when M
micro-batches make a step: rows [(k % M) * rows, (k % M + 1) * rows) at position start + k // M.
That is what lets decode steps stream through a pipeline as one run of steps x M micro-batches.
"""

import torch
from megatron.core.inference.contexts import StaticInferenceContext


class KVCache:
    """The context of `sequences` sequences of up to `max_length` positions, and the rotary
    table for those positions (None without rotary embeddings)."""

    def __init__(self, sequences: int, max_length: int, rotary: torch.Tensor | None):
        self.context = StaticInferenceContext(sequences, max_length)
        self.rotary = rotary
        self._calls: dict[int, int] = {}
        self._position, self._per_step = 0, 1

    def start(self, position: int, micro_batches: int) -> None:
        """Before a prefill batch (position 0: the prompts) or decode steps from `position` (the
        same for every sequence: static batching), `micro_batches` to a step."""
        self._position, self._per_step = position, micro_batches
        self._calls.clear()

    def enter(self, layer_number: int, rows: int) -> StaticInferenceContext:
        """The context pointed at this layer's next micro-batch of `rows` sequences."""
        calls = self._calls.get(layer_number, 0)
        self._calls[layer_number] = calls + 1
        step, micro_batch = divmod(calls, self._per_step)
        position = self._position + step
        self.context.sequence_len_offset = position
        self.context.batch_size_offset = micro_batch * rows
        if position == 0:
            self.context.enable_prefill_mode()
        else:
            self.context.enable_decode_mode()
        return self.context
