"""The one interface the session drives: a layout's part on this rank.

Each layout is one file: `deepspeed_pipe.LayerwisePipeline` (DeepSpeed's pipeline engine over
whole megatron-core layers) and `megatron_tp_pp.MegatronTPxPP` (megatron-core's tensor-parallel
layers and forward-only pipeline schedule). Adding a layout = one file + one line below.
"""

from typing import Protocol

import torch

from layerwise.config import RunConfig
from layerwise.grid import Place
from layerwise.layouts import Layout


class Adapter(Protocol):
    """Built from a plan's layout for one rank (only that rank's layers, or shards of them)."""

    def prefill(self, chunks: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """One replica batch through the layout, filling the KV cache from position 0: the
        chunks on a first-stage rank (None elsewhere); each chunk's output on the replica's last
        stage, None elsewhere."""

    def decode_step(
        self, tokens: list[torch.Tensor] | None, step: int
    ) -> list[torch.Tensor] | None:
        """Decode step `step`: one new token per sequence, in the plan's decode micro-batches,
        attending over the cache of the prompt and the steps before; as `prefill`."""


def build_adapter(config: RunConfig, layout: Layout, place: Place, device: torch.device) -> Adapter:
    if layout.mode == "baseline":
        from layerwise.runtime.megatron_tp_pp import MegatronTPxPP

        return MegatronTPxPP(config, layout, place, device)
    from layerwise.runtime.deepspeed_pipe import LayerwisePipeline

    return LayerwisePipeline(config, layout, place, device)
