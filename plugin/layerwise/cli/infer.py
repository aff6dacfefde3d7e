"""`layerwise-infer` (launch/infer.py): validate, plan, run this rank's part of the layout, report.

Started by `deepspeed --num_gpus N launch/infer.py --config FILE` or torchrun; "mode" in the
config chooses the layout (baseline: megatron-core TP x PP; layerwise: DeepSpeed pipeline). CPU
mock mode (gloo, the patches in runtime/compat/cpu_mock.py) is chosen when no CUDA device is
present; the code path is the same otherwise.

Exit codes: 0 success; 2 bad input (config, world size, paths, a model that does not fit), one
message; 3 the run finished but --verify found outputs off the one-process reference (results
still written, marked "ok": false); 1 an internal error, with its traceback.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from layerwise.cli.common import plan_for_run, runtime_problems, write_atomically
from layerwise.cli.outputs import output_problems
from layerwise.config.load import load_config
from layerwise.config.sections import RunConfig
from layerwise.errors import ConfigError, ExitCode, LayerwiseError
from layerwise.planner.records import Layout
from layerwise.runtime import logs
from layerwise.runtime.distributed import DistEnv, read_env

PEER_EXIT_DELAY_S = 5.0  # ranks other than 0 wait this long before exiting on a config error


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch/infer.py",
        description=(
            "Run the layout that the config's mode names (baseline: Megatron TP x PP; "
            "layerwise: DeepSpeed pipeline) on this world of ranks and print measured beside "
            "predicted throughput and TPOT."
        ),
        epilog="exit codes: 0 ok, 1 internal error, 2 bad input, 3 --verify failed",
    )
    parser.add_argument("--config", required=True, type=Path, help="run config (JSON)")
    parser.add_argument("--results", type=Path, help="write measured and predicted figures here")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also run the whole model in one process on rank 0 and compare outputs",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show DeepSpeed's and megatron-core's logs"
    )
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )  # the deepspeed launcher passes it
    return parser.parse_args(argv)


def world_problems(config: RunConfig, env: DistEnv, config_path: Path) -> list[str]:
    if config.hardware.gpus == env.world_size:
        return []
    if not env.launched:
        gpus = config.hardware.gpus
        return [
            f"hardware.gpus = {gpus}, but launch/infer.py was started as one process: start "
            f"{gpus} ranks with `deepspeed --num_gpus {gpus} launch/infer.py --config "
            f"{config_path}` or `torchrun --nproc_per_node {gpus} launch/infer.py --config "
            f"{config_path}`"
        ]
    return [
        f"hardware.gpus = {config.hardware.gpus}, but the launcher started "
        f"{env.world_size} ranks (WORLD_SIZE)"
    ]


def prepare(args: argparse.Namespace, env: DistEnv) -> tuple[RunConfig, Layout]:
    """Everything checked before any rank touches the network; raises LayerwiseError."""
    problems = output_problems("--results", args.results, [args.config])
    if problems:
        raise ConfigError(problems, "arguments")
    config = load_config(args.config)
    problems = runtime_problems(config) + world_problems(config, env, args.config)
    if problems:
        raise ConfigError(problems, str(args.config))
    plan = plan_for_run(config)
    return config, plan.layout(config.mode)


def config_error(env: DistEnv, error: LayerwiseError) -> int:
    """Every rank finds the same problem in the same files: rank 0 says it once; the others
    wait a moment, so that the launcher (which stops all ranks when the first one exits) lets
    rank 0 finish."""
    if env.is_main:
        print(f"error: {error}", file=sys.stderr, flush=True)
    else:
        time.sleep(PEER_EXIT_DELAY_S)
    return ExitCode.USAGE


def run_error(env: DistEnv, message: str) -> int:
    """A user-caused failure that this rank alone may meet (out of memory)."""
    print(f"error (rank {env.rank}): {message}", file=sys.stderr, flush=True)
    return ExitCode.USAGE


def out_of_memory(error: BaseException) -> bool:
    """A GPU's out-of-memory error, or a CPU rank's (MemoryError, or the CPU allocator's
    RuntimeError)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return "can't allocate memory" in str(error)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.verbose)
    env = read_env(args.local_rank)
    try:
        config, layout = prepare(args, env)
    except LayerwiseError as error:
        return config_error(env, error)
    if config.mode == "baseline" and config.deepspeed and env.is_main:
        logs.log.warning("note: the deepspeed section configures the layer-wise runtime only")

    from layerwise.runtime import session
    from layerwise.runtime.results import report

    try:
        measurement = session.run(config, layout, env, verify=args.verify)
    except LayerwiseError as error:  # found late (DeepSpeed's own checks), but on every rank
        return config_error(env, error)
    except (MemoryError, RuntimeError) as error:  # torch.cuda.OutOfMemoryError included
        if not out_of_memory(error):
            raise
        return run_error(
            env,
            f"out of memory ({(str(error) or type(error).__name__).splitlines()[0][:200]}); "
            "the plan predicted "
            f"{layout.memory_bytes_per_gpu / 2**30:.2f} GiB per GPU of "
            f"{config.gpu.usable_bytes / 2**30:.2f} usable (hardware profile "
            f"{config.gpu.name!r}): lower workload.batch_size or workload.seq_len",
        )
    if not env.is_main:
        return ExitCode.OK
    result = report(config, layout, env.world_size, measurement)
    print(result.table, flush=True)
    if args.results is not None:
        write_atomically(args.results, (json.dumps(result.results, indent=2) + "\n").encode())
    if not result.ok:
        logs.log.error("error: --verify: outputs differ from the one-process reference (exit 3)")
        return ExitCode.VERIFY_FAILED
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
