"""Time this machine's kernels: GEMMs by shape, fixed cost and floors, memory, L2, attention.

On a CUDA GPU kernels are timed inside CUDA graphs (device time, no launch gaps; the host's
share is measured separately, per layer call); on the CPU as plain loops on one thread, as a
mock rank runs them. Figures not measured are copied from the config's profile and listed so.
"""

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from layerwise.calibrate.fit import (
    Line,
    fit_line,
    gemm_shapes,
    l2_priced,
    seq_grid,
    significant,
    token_grid,
    work_rate_tflops,
)
from layerwise.config.sections import RunConfig
from layerwise.model.spec import ModelSpec

BATCH_S = 10e-3  # a timed batch of calls lasts about this long
BATCHES = 5  # timed batches per figure (median)


@dataclass(frozen=True)
class Device:
    """Where kernels run: the device, its dtype, and the cache that decides residency (L2 on a
    GPU; on a CPU the last level, which evicted operands must outgrow)."""

    torch_device: torch.device
    dtype: torch.dtype
    l2_bytes: int
    evict_bytes: int

    @property
    def cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    @property
    def dtype_bytes(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()


class Progress:
    """A one-line progress bar on stderr: `[done/total] what`."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        bar = "#" * (20 * self.done // self.total)
        line = f"calibrate [{bar:<20}] {self.done}/{self.total} {elapsed:5.0f} s  {what}"
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{line:<100}" + ("\n" if self.done == self.total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _cpu_cache_bytes(level: int) -> int:
    """Size of cpu0's cache at `level` from sysfs (0 if unknown)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in base.glob("index*"):
        try:
            if int((index / "level").read_text()) != level:
                continue
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
    return 0


def local_device(dtype_name: str) -> Device:
    """The first CUDA GPU with the run's dtype, else this CPU in fp32 (mock mode's dtype)."""
    if torch.cuda.is_available():
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype_name, torch.float32)
        return Device(torch.device("cuda"), dtype, l2, 4 * l2)
    l2, llc = _cpu_cache_bytes(2), _cpu_cache_bytes(3) or _cpu_cache_bytes(2)
    return Device(torch.device("cpu"), torch.float32, l2 or 2**20, 4 * max(llc, 2**22))


def device_name(device: Device) -> str:
    if device.cuda:
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores"


def time_calls(device: Device, call: Callable[[int], object], graph: bool = True) -> float:
    """Median seconds of one `call(i)`, i cycling over calls; CUDA: replayed from a graph, or
    (graph=False, for the host's share) wall time of a batch of calls to its last kernel."""
    for i in range(3):
        call(i)
    if device.cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    call(3)
    if device.cuda:
        torch.cuda.synchronize()
    calls = max(1, min(1000, int(BATCH_S / max(time.perf_counter() - start, 1e-7))))
    if device.cuda and graph:
        return _time_graph(call, calls)
    samples = []
    for _ in range(BATCHES):
        begin = time.perf_counter()
        for i in range(calls):
            call(i)
        if device.cuda:
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - begin) / calls)
    return statistics.median(samples)


def _time_graph(call: Callable[[int], object], calls: int) -> float:
    """Capture `calls` calls in one CUDA graph; median replay time per call."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(3):
            call(i)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            call(i)
    samples = []
    for _ in range(BATCHES):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(begin.elapsed_time(end) / 1e3 / calls)
    return statistics.median(samples)


def _randn(device: Device, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=device.dtype, device=device.torch_device)


def gemm_seconds(device: Device, tokens: int, shape: tuple[int, int], evicted: bool) -> float:
    """X[tokens, K] @ W[K, N]; `evicted`: each call reads another copy of W, so many that the
    cache never holds the one in use."""
    rows, cols = shape
    weight_bytes = rows * cols * device.dtype_bytes
    copies = 1 + (device.evict_bytes // weight_bytes if evicted else 0)
    weights = [_randn(device, rows, cols) for _ in range(min(copies, 4096))]
    inputs = _randn(device, tokens, rows)
    return time_calls(device, lambda i: torch.matmul(inputs, weights[i % len(weights)]))


def fixed_seconds(device: Device) -> float:
    """The per-kernel cost on a host that runs its kernels (CPU): a 1 x 8 @ 8 x 8 product.
    0 on a GPU, where the host's share overlaps the device and is priced per layer call."""
    if device.cuda:
        return 0.0
    inputs, weight = _randn(device, 1, 8), _randn(device, 8, 8)
    return time_calls(device, lambda i: torch.matmul(inputs, weight))


def floor_seconds(device: Device) -> tuple[float, float]:
    """(GEMM floor, elementwise floor): the shortest kernels, under a graph (0 on a CPU, whose
    short kernels are priced by the fixed cost)."""
    if not device.cuda:
        return 0.0, 0.0
    inputs, weight = _randn(device, 1, 64), _randn(device, 64, 64)
    tiny = _randn(device, 64)
    return (
        time_calls(device, lambda i: torch.matmul(inputs, weight)),
        time_calls(device, lambda i: tiny + tiny),
    )


def elementwise_line(device: Device, fixed_s: float) -> Line:
    """out = a + b over sizes past the cache: seconds against bytes read and written."""
    points = []
    for elements in (2**16, 2**18, 2**20, 2**22):
        left, right = _randn(device, elements), _randn(device, elements)
        seconds = time_calls(device, lambda i, a=left, b=right: a + b)
        points.append((3.0 * elements * device.dtype_bytes, seconds - fixed_s))
    return fit_line(points)


def attention_heads(model: ModelSpec) -> tuple[int, int, int]:
    """(query heads, K/V heads, head dim) to time attention with: the model's, or for models
    without attention (dense) 8 heads of 64."""
    if not model.heads:
        return 8, 8, 64
    return model.heads, model.kv_heads, model.head_dim


def attention_seconds(device: Device, model: ModelSpec, sequences: int, seq_len: int) -> float:
    """Causal SDPA of `sequences` x `seq_len` tokens over the model's heads (K, V grouped)."""
    heads, kv_heads, dim = attention_heads(model)
    query = _randn(device, sequences, heads, seq_len, dim)
    keys = _randn(device, sequences, kv_heads, seq_len, dim)
    return time_calls(
        device,
        lambda i: torch.nn.functional.scaled_dot_product_attention(
            query, keys, keys, is_causal=True, enable_gqa=heads != kv_heads
        ),
    )


@dataclass(frozen=True)
class Kernels:
    """The kernel figures of a profile and the L2 experiment's raw timings."""

    fields: dict
    l2_weight_bytes: int
    l2_resident_s: float
    l2_evicted_s: float


def measure_kernels(configs: list[RunConfig], device: Device, progress: Progress) -> Kernels:
    """GEMM grid (every config's shapes), fixed cost and floors, weight streaming from memory,
    L2, elementwise and attention rates (the widest model's heads): the kernel fields."""
    fixed = fixed_seconds(device)
    gemm_floor, kernel_floor = floor_seconds(device)
    progress.step("fixed cost and floors")
    rates: dict[str, dict[int, float]] = {}
    tokens_grid = max((token_grid(config) for config in configs), key=len)
    for shape in sorted({shape for config in configs for shape in gemm_shapes(config)}):
        table = rates.setdefault(f"{shape[0]}x{shape[1]}", {})
        for tokens in tokens_grid:
            seconds = gemm_seconds(device, tokens, shape, evicted=False)
            flops = 2.0 * tokens * shape[0] * shape[1]
            table[tokens] = significant(work_rate_tflops(flops, seconds, fixed))
            progress.step(f"gemm {shape[0]}x{shape[1]} M={tokens}")
    side = 64
    while 4 * side * side * device.dtype_bytes <= device.l2_bytes // 2:  # fits half of L2
        side *= 2
    evicted = [
        (float(size * size * device.dtype_bytes), gemm_seconds(device, 1, (size, size), True))
        for size in (side, 2 * side, 4 * side)
    ]
    memory = fit_line([(size, seconds - fixed) for size, seconds in evicted])
    resident = gemm_seconds(device, 1, (side, side), evicted=False)
    progress.step(f"weights from memory and from L2 ({side}x{side})")
    elementwise = elementwise_line(device, fixed)
    progress.step("elementwise")
    attention = {}
    model = max((config.model for config in configs), key=lambda model: model.attention_width)
    batch = max(config.workload.batch_size for config in configs)
    for seq_len in sorted({seq_len for config in configs for seq_len in seq_grid(config)}):
        sequences = max(1, min(batch, 8192 // seq_len))
        seconds = attention_seconds(device, model, sequences, seq_len)
        heads, _, dim = attention_heads(model)
        flops = 2.0 * sequences * seq_len**2 * heads * dim
        attention[seq_len] = significant(work_rate_tflops(flops, seconds, fixed))
        progress.step(f"attention s={seq_len}")
    weight_bytes, evicted_s = evicted[0]
    fields = {
        "gemm_tflops": rates,
        "gemm_floor_us": significant(gemm_floor * 1e6),
        "kernel_floor_us": significant(kernel_floor * 1e6),
        "kernel_fixed_us": significant(fixed * 1e6),
        "hbm_gbs": significant(memory.gbs),
        "elementwise_gbs": significant(elementwise.gbs),
        "attention_tflops": max(attention.values()),
        "attention_tflops_by_seq": attention,
        "l2_mib": significant(device.l2_bytes / 2**20),
        "l2_gbs": significant(weight_bytes / max(resident - fixed, 1e-9) / 1e9)
        if l2_priced(evicted_s, resident)
        else 0.0,
    }
    return Kernels(fields, int(weight_bytes), resident, evicted_s)
