"""Weights and KV cache stored in another dtype than the activations (FP8, e4m3): their bytes,
and the GEMM rate of FP8 weights.

A kernel is built at the activations' dtype (costmodel/kernels.py); `stored` rescales what it
reads of the weights and of the KV cache, and marks a GEMM on FP8 weights to run at the
profile's FP8 rate: the measured GEMM rate scaled by the datasheet FP8 / BF16 peak (W8A8, the
activations quantized per token as serving engines do)."""

from dataclasses import dataclass, replace

from layerwise.hardware.spec import HardwareSpec

STORAGE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1}


@dataclass(frozen=True, kw_only=True)
class Storage:
    """Bytes per weight and per KV-cache element, and the GEMM rate's scale."""

    weight_bytes: float
    kv_bytes: float
    gemm_rate_scale: float = 1.0


def storage_of(
    hardware: HardwareSpec, dtype: str, weights_dtype: str | None, kv_dtype: str | None
) -> Storage:
    """The run's storage: weights and KV cache in their own dtypes (None: the run's dtype); FP8
    weights run GEMMs at fp8_peak_tflops / peak_tflops of the measured rate (1 where the
    profile gives no FP8 peak)."""
    weights, kv = weights_dtype or dtype, kv_dtype or dtype
    fp8 = weights == "fp8" and hardware.fp8_peak_tflops > 0
    return Storage(
        weight_bytes=STORAGE_BYTES[weights],
        kv_bytes=STORAGE_BYTES[kv],
        gemm_rate_scale=hardware.fp8_peak_tflops / hardware.peak_tflops if fp8 else 1.0,
    )


def stored(kernels: list, dtype_bytes: int, storage: Storage | None) -> list:
    """`kernels` (built at `dtype_bytes` per element) with their weight and KV-cache bytes in
    the storage's dtypes and GEMMs at its rate."""
    if storage is None:
        return kernels
    weights, kv = storage.weight_bytes / dtype_bytes, storage.kv_bytes / dtype_bytes
    return [
        replace(
            kernel,
            weight_bytes=kernel.weight_bytes * weights,
            cache_bytes=kernel.cache_bytes * kv,
            rate_scale=storage.gemm_rate_scale if kernel.kind == "gemm" else 1.0,
        )
        for kernel in kernels
    ]
