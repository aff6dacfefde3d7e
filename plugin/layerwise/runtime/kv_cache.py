"""This rank's KV cache: megatron-core's StaticInferenceContext, told which rows and position
each micro-batch writes.

megatron's attention keeps one [max length, max batch, kv heads, head dim] K and V buffer per
layer in the context, writes a forward's keys at (`sequence_len_offset`, `batch_size_offset`)
and attends over positions [0, offset + new tokens). What it lacks for a pipeline is the
micro-batch: both schedules (DeepSpeed's and megatron's forward-only) run a stage's micro-batches
in order, so a layer's k-th forward since `start` is micro-batch k, rows [k * rows, (k + 1) *
rows).
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

    def start(self, position: int) -> None:
        """Before a prefill batch (position 0: the prompts) or a decode step (the new token's
        position, the same for every sequence: static batching)."""
        self.context.sequence_len_offset = position
        if position == 0:
            self.context.enable_prefill_mode()
        else:
            self.context.enable_decode_mode()
        self._calls.clear()

    def enter(self, layer_number: int, rows: int) -> StaticInferenceContext:
        """The context pointed at the rows of this layer's next micro-batch of `rows` sequences."""
        calls = self._calls.get(layer_number, 0)
        self._calls[layer_number] = calls + 1
        self.context.batch_size_offset = calls * rows
        return self.context
