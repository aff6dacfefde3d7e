"""FP8 weights and KV cache: their bytes in memory and in the kernels, the GEMM rate of FP8
weights, and the largest batch that FP8 lets fit."""

import json
import math
from dataclasses import replace

import pytest

from layerwise.config.load import parse_config
from layerwise.costmodel.kernels import Chunk, Kernel, kernel_time, layer_cost, layer_kernels
from layerwise.costmodel.precision import Storage, storage_of, stored
from layerwise.hardware.spec import find_hardware_profile, load_hardware
from layerwise.planner.capacity import fits_at, largest
from layerwise.planner.inputs import plan_inputs
from layerwise.planner.layerwise import layerwise_setting
from layerwise.planner.setting import resident_sizes, weight_sizes
from tests.conftest import CONFIGS

H200 = load_hardware(find_hardware_profile("h200"))


def config_405b(weights=None, kv=None, batch=None):
    data = json.loads((CONFIGS / "llama-3.1-405b_h200x8.json").read_text())
    data["run"].update({k: v for k, v in (("weights_dtype", weights), ("kv_dtype", kv)) if v})
    if batch:
        data["workload"]["batch_size"] = batch
    return parse_config(data, "405b.json", CONFIGS)


def test_storage_defaults_to_the_run_dtype_and_fp8_doubles_the_gemm_rate():
    assert storage_of(H200, "bf16", None, None) == Storage(weight_bytes=2, kv_bytes=2)
    fp8 = storage_of(H200, "bf16", "fp8", "fp8")
    assert (fp8.weight_bytes, fp8.kv_bytes) == (1, 1)
    assert fp8.gemm_rate_scale == pytest.approx(1979 / 989)  # datasheet FP8 / BF16 peaks
    no_fp8_figure = replace(H200, fp8_peak_tflops=0.0)
    assert storage_of(no_fp8_figure, "bf16", "fp8", None).gemm_rate_scale == 1.0


def test_fp8_halves_weight_and_kv_bytes_per_gpu():
    base, fp8 = plan_inputs(config_405b()), plan_inputs(config_405b("fp8", "fp8"))
    setting = layerwise_setting(base, 1, "auto")
    weights, weights8 = weight_sizes(base, setting), weight_sizes(fp8, setting)
    assert weights8 == pytest.approx([w / 2 for w in weights])
    kv = [r - w for r, w in zip(resident_sizes(base, setting), weights)]
    kv8 = [r - w for r, w in zip(resident_sizes(fp8, setting), weights8)]
    assert kv8 == pytest.approx([k / 2 for k in kv])
    # by hand: a block's K and V, 8 KV heads x 128, 1 byte each, every cached token
    tokens = base.workload.batch_size * (base.workload.seq_len + base.workload.decode_steps)
    assert kv8[1] == pytest.approx(2 * 8 * 128 * 1 * tokens)


def test_kernels_read_fp8_weights_and_cache_and_run_gemms_at_the_fp8_rate():
    model = config_405b().model
    chunk = Chunk(tokens=64, sequences=64, context=2048, decode=True)
    kernels = layer_kernels(model, 1, chunk, 8, 2)
    fp8 = stored(kernels, 2, Storage(weight_bytes=1, kv_bytes=1, gemm_rate_scale=2.0))
    for before, after in zip(kernels, fp8):
        assert after.weight_bytes == before.weight_bytes / 2
        assert after.cache_bytes == before.cache_bytes / 2
        assert after.rate_scale == (2.0 if before.kind == "gemm" else 1.0)
    gemm = Kernel(
        name="g",
        kind="gemm",
        flops=1e15,
        weight_bytes=0.0,
        activation_bytes=0.0,
        shape=(16384, 16384),
    )
    slow = kernel_time(H200, gemm, 8192, False, False)
    fast = kernel_time(H200, replace(gemm, rate_scale=2.0), 8192, False, False)
    assert fast == pytest.approx(slow / 2, rel=1e-3)  # compute-bound: the rate decides
    device = replace(H200, layer_host_us={})  # the kernels alone, not the host's time
    bf16 = layer_cost(model, device, 1, chunk, 8, 2, math.inf).compute_s
    both = storage_of(device, "bf16", "fp8", "fp8")
    assert layer_cost(model, device, 1, chunk, 8, 2, math.inf, storage=both).compute_s < bf16


def test_fp8_fits_a_larger_batch():
    bf16 = largest(lambda batch: fits_at(config_405b(), batch), 1, 4096)
    fp8 = largest(lambda batch: fits_at(config_405b("fp8", "fp8"), batch), 1, 4096)
    assert bf16 is not None and fp8 > 2 * bf16  # weights and KV both halved
