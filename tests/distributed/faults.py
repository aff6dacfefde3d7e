"""launch/infer.py with a deliberate bug in the layout's computation (a test double, not product
code), named by FAULT, so that --verify is shown a wrong answer. The reference --verify builds
(TP 1, one process, its own KV cache) is left as it is.

FAULT=none          no bug: the control, which must pass
FAULT=tp_shard      every TP rank loads the next rank's rows of each split weight
FAULT=layer         pipeline layer 1 returns its output scaled by 1.01
FAULT=kv_position   decode steps write and read the KV cache one position early, over the
                    prompt's last position (prefill exact)
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from layerwise.cli import infer as launcher  # noqa: E402
from layerwise.runtime import model  # noqa: E402
from layerwise.runtime.kv_cache import KVCache  # noqa: E402
from layerwise.runtime.runners import deepspeed_pipe, megatron_tp_pp  # noqa: E402

RUNNERS = (deepspeed_pipe, megatron_tp_pp)


def wrong_shard(full, dim, size, rank, halves):
    """The next TP rank's rows: the same shapes, the wrong values (TP 1 is unchanged)."""
    ranks = full.shape[dim] // size
    return real_shard(full, dim, size, (rank + 1) % ranks, halves)


class ScaledLayer(model.PresetLayer):
    def forward(self, hidden):
        out = super().forward(hidden)
        return out * 1.01 if self.index == 1 else out


class EarlyCache(KVCache):
    def start(self, position: int, micro_batches: int) -> None:
        super().start(position - 1 if position > 0 else 0, micro_batches)


def early_stage_cache(config_model, assignment, device):
    cache = real_stage_cache(config_model, assignment, device)
    if cache is not None:
        cache.__class__ = EarlyCache
    return cache


real_shard, real_stage_cache = model.shard, model.stage_cache
fault = os.environ["FAULT"]
if fault == "tp_shard":
    model.shard = wrong_shard
elif fault == "layer":
    for runner in RUNNERS:
        runner.PresetLayer = ScaledLayer
elif fault == "kv_position":
    for runner in RUNNERS:
        runner.stage_cache = early_stage_cache
elif fault != "none":
    raise SystemExit(f"unknown FAULT={fault!r}")

if __name__ == "__main__":
    sys.exit(launcher.main())
