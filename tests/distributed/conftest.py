"""Launch helpers: torchrun / deepspeed from this interpreter's environment, CPU only."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def launch(
    launcher: list[str], script: str, *args: str, timeout: float = 240, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `script` under a launcher (torchrun or deepspeed) with CPU-only settings."""
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "DS_ACCELERATOR": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    return subprocess.run(
        [*launcher, script, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def torchrun(ranks: int, port: int) -> list[str]:
    return [str(BIN / "torchrun"), f"--nproc_per_node={ranks}", f"--master_port={port}"]


def deepspeed_launcher(ranks: int, port: int) -> list[str]:
    return [str(BIN / "deepspeed"), "--num_gpus", str(ranks), "--master_port", str(port)]
