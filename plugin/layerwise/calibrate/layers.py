"""Host time of one layer call, the layer_host_us of a profile: the config's model rebuilt at
the smallest shape of its kind, so its kernels cost next to nothing and what a call takes is
Python, module and framework dispatch (calibrate/kernels.py's timer)."""

import math
from dataclasses import replace

import torch

from layerwise.calibrate.kernels import Device, Progress, time_calls
from layerwise.config.sections import RunConfig
from layerwise.costmodel.kernels import Chunk, layer_cost
from layerwise.hardware.spec import HardwareSpec
from layerwise.model.spec import ModelSpec
from layerwise.runtime.kv_cache import KVCache
from layerwise.runtime.model import PresetLayer, rotary_table

CACHE_LENGTH = 4  # positions of the tiny model's KV cache: a prompt token and a decode step


def tiny_model(model: ModelSpec) -> ModelSpec:
    """`model` with one block of 16 wide (2 heads of 8, a 32-wide MLP, 32 tokens of vocabulary
    where it has one), keeping its kind, norm, gating, rotary and bias choices."""
    heads = 2 if model.heads else 0
    return replace(
        model,
        num_layers=1,
        hidden=16,
        heads=heads,
        head_dim=8 if heads else 0,
        query_groups=1 if model.query_groups else 0,
        ffn_hidden=32 if model.ffn_hidden else 0,
        vocab_size=32 if model.vocab_size else 0,
    )


def _input(model: ModelSpec, index: int, device: Device) -> torch.Tensor:
    """One token of one sequence as layer `index` takes it."""
    if model.role(index)[0] == "embedding":
        return torch.zeros(1, 1, dtype=torch.long, device=device.torch_device)
    shape = (1, model.hidden) if model.kind == "dense" else (1, 1, model.hidden)
    return torch.randn(*shape, dtype=device.dtype, device=device.torch_device)


def measure_layer_host(
    config: RunConfig, device: Device, hardware: HardwareSpec, groups, progress: Progress
) -> dict[str, float]:
    """Microseconds per call beyond the kernels, by ModelSpec.host_key ("gpt_decode": a gpt
    block's decode step through the KV cache). On a GPU the host queues kernels ahead, so a
    call's wall time is the host's; on a CPU the modelled kernel time is taken off."""
    model = tiny_model(config.model)
    cache = None
    if model.kind == "gpt":
        on_cpu = not device.cuda
        cache = KVCache(1, CACHE_LENGTH, rotary_table(model, CACHE_LENGTH, on_cpu))
    roles = {model.host_key(index): index for index in range(model.pipeline_layers)}
    found = {}
    for role, index in roles.items():
        layer = PresetLayer(
            model, index, config.run.seed, device.dtype, device.torch_device, groups, cache
        )
        hidden = _input(model, index, device)
        steps = [("", 0)] + ([("_decode", 1)] if model.role(index)[0] == "block" and cache else [])
        for suffix, position in steps:

            def call(i, layer=layer, hidden=hidden, position=position):
                if cache is not None:
                    cache.start(position, 1)
                with torch.no_grad():
                    return layer(hidden)

            seconds = time_calls(device, call, graph=False)
            chunk = Chunk(tokens=1, sequences=1, context=position + 1, decode=position > 0)
            if not hardware.host_overlaps_device:  # the profile so far has no host time yet
                seconds -= layer_cost(
                    model, hardware, index, chunk, 1, device.dtype_bytes, math.inf
                ).compute_s
            found[role + suffix] = max(0.0, seconds) * 1e6
            progress.step(f"host time of a {role}{suffix.replace('_', ' ')} call")
    return found
