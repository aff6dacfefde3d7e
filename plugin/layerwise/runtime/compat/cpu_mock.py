"""CPU mock mode: the process-global patches that let the GPU code path run on CPU ranks (gloo).

Applied only when no CUDA device is present, by the session, before DeepSpeed or megatron-core
initialise anything (docs/sources.md says why each one is needed). The runtime's other contacts
with internals are beside this file: c10d.py sets c10d's default group timeouts (on every run),
deepspeed_internals.py holds every use of DeepSpeed's private members.
"""

import importlib
import os
import types

_applied = False


class _CpuZerosTorch(types.ModuleType):
    """torch as megatron-core's pipeline schedules see it, with `zeros(..., device="cuda")` (its
    token counter) made on the CPU instead."""

    def __init__(self, torch):
        super().__init__("torch")
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def zeros(self, *args, device=None, **kwargs):
        return self._torch.zeros(*args, device="cpu" if device == "cuda" else device, **kwargs)


def apply_cpu_mock_patches() -> None:
    """Idempotent. DeepSpeed: CPU accelerator, no shared-memory op build (80-100 s of JIT).
    megatron-core: torch.cuda.current_device() is the CPU device (its buffers and p2p shapes),
    torch.cuda.synchronize() a no-op (its batched p2p), and its schedules' token counter on CPU."""
    global _applied
    if _applied:
        return
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    comm = importlib.import_module("deepspeed.comm.torch")
    comm.build_shm_op = lambda *args, **kwargs: None
    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda *args, **kwargs: None
    schedules = importlib.import_module("megatron.core.pipeline_parallel.schedules")
    schedules.torch = _CpuZerosTorch(torch)
    _applied = True
