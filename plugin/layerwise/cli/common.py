"""What the command-line programs share: atomic writes, a free port, a quiet run of the launcher."""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from layerwise.cli.processes import run_captured
from layerwise.config.sections import RunConfig
from layerwise.errors import ConfigError, RunFailedError
from layerwise.planner.plan import make_plan
from layerwise.planner.records import Plan
from layerwise.runtime.compat.deepspeed_config import deepspeed_problems


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.
    The file gets the permissions a plain open() would give (0666 less the umask), not mkstemp's
    0600. An existing path that is not a regular file (a device, a FIFO) is never replaced:
    OSError."""
    if path.exists() and not path.is_file():
        raise FileExistsError(f"{path} exists and is not a regular file; it is not replaced")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


INFER_MODULE = "layerwise.cli.infer"  # the runtime, launched by module: no path into a checkout


def launch_command(launcher: str, ranks: int) -> list[str]:
    """The launcher on `ranks` local ranks, up to the module it runs (torchrun or deepspeed)."""
    port = str(free_port())
    if launcher == "torchrun":
        module = ["torch.distributed.run", "--nproc_per_node", str(ranks)]
        as_module = "-m"
    else:
        module = ["deepspeed.launcher.runner", "--num_gpus", str(ranks)]
        as_module = "--module"
    return [sys.executable, "-m", *module, "--master_port", port, as_module]


def infer_command(
    launcher: str, ranks: int, config_path: Path, results: Path, flags: tuple[str, ...] = ()
) -> list[str]:
    """The runtime (`layerwise.cli.infer`) on `ranks` local ranks through the launcher, writing
    `results`."""
    return [
        *launch_command(launcher, ranks),
        INFER_MODULE,
        "--config",
        str(config_path),
        "--results",
        str(results),
        *flags,
    ]


def error_lines(stderr: str) -> str:
    """The lines a failed run's ranks printed as its error (else the end of its stderr)."""
    said = [line for line in stderr.splitlines() if line.startswith(("error", "  - "))]
    return "\n".join(said or [stderr[-3000:]])


def run_quietly(data: dict, folder: Path, name: str, timeout_s: float) -> dict:
    """A config given as data, written to `folder`, run by torchrun on its own world size with
    its output captured; the run's results JSON. RunFailedError (a RuntimeError) with the run's
    error lines when it fails or runs past `timeout_s`; on that, Ctrl-C or SIGTERM every process
    the run started is killed first (cli/processes.py)."""
    path, results = folder / f"{name}.json", folder / f"{name}.results.json"
    path.write_text(json.dumps(data, indent=2))
    command = infer_command("torchrun", data["hardware"]["gpus"], path, results)
    try:
        done = run_captured(command, timeout_s)
    except subprocess.TimeoutExpired as late:
        raise RunFailedError(name, error_lines(late.stderr or ""), None, timeout_s) from None
    if done.returncode != 0:
        mark_failed(results, done.returncode)
        raise RunFailedError(name, error_lines(done.stderr), done.returncode, timeout_s)
    return json.loads(results.read_text())


def mark_failed(results: Path, exit_code: int | None) -> None:
    """A run whose launcher exited non-zero after rank 0 wrote its results (a rank died late):
    the file says so ("ok": false, the launcher's exit code), so no reader takes it as good."""
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        return  # none written, or not ours to fix
    if isinstance(data, dict):
        data.update(ok=False, launcher_exit_code=exit_code)
        write_atomically(results, (json.dumps(data, indent=2) + "\n").encode())


def runtime_problems(config: RunConfig) -> list[str]:
    """What the planner plans but the runtime cannot run: FP8 weights or KV cache."""
    return [
        f"run.{key} = 'fp8': the runtime has no FP8 path yet (megatron-core's FP8 needs "
        f"Transformer Engine); plan it with launch/plan.py, and leave run.{key} out to run it"
        for key in ("weights_dtype", "kv_dtype")
        if getattr(config.run, key) == "fp8"
    ]


def plan_for_run(config: RunConfig) -> Plan:
    """The plan of a config that is to run: `make_plan`, then the config's `deepspeed` section
    checked against it (the runtime's policy, not the planner's); ConfigError with every
    contradiction."""
    plan = make_plan(config)
    problems = deepspeed_problems(config, plan.layerwise) if plan.layerwise is not None else []
    if problems:
        raise ConfigError(problems, config.source)
    return plan
