"""CPU mock mode: the process-global patches that let the GPU code path run on CPU ranks (gloo).

Applied only when no CUDA device is present, by the launcher, before DeepSpeed or megatron-core
initialise anything (../shared/FACTS.md lists why each one is needed).
"""

import importlib
import os

_applied = False


def apply_cpu_mock_patches() -> None:
    """Idempotent. DeepSpeed: CPU accelerator, no shared-memory op build (80-100 s of JIT).
    megatron-core: torch.cuda.current_device() returns the CPU device for its buffers."""
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
    _applied = True
