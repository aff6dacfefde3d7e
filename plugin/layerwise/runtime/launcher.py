"""`launch/infer.py`: plan, build this rank's stage, time prefill and decode, report.

Started by `deepspeed --num_gpus N launch/infer.py --config FILE` or torchrun. CPU mock mode
(gloo, the patches in mock.py) is chosen when no CUDA device is present; the code path is the
same otherwise. Exit codes: 0 success, 1 failed verification or a crash, 2 bad input.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

from layerwise.cli import write_atomically
from layerwise.config import RunConfig, load_config
from layerwise.errors import ConfigError, LayerwiseError
from layerwise.plan import make_plan
from layerwise.runtime.distributed import DistEnv, read_env

EXIT_FAILED, EXIT_USAGE = 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch/infer.py",
        description=(
            "Run a config's layer-wise plan on this world of ranks and print measured beside "
            "predicted throughput and TPOT."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, help="run config (JSON)")
    parser.add_argument("--results", type=Path, help="write measured and predicted figures here")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also run the whole model in one process on rank 0 and compare",
    )
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )  # the deepspeed launcher passes it
    return parser.parse_args(argv)


def check_world(config: RunConfig, env: DistEnv) -> list[str]:
    problems = []
    if config.hardware.gpus != env.world_size:
        problems.append(
            f"hardware.gpus = {config.hardware.gpus}, but the launcher started "
            f"{env.world_size} ranks (WORLD_SIZE)"
        )
    if config.mode != "layerwise":
        problems.append(
            f"mode = {config.mode!r}: only the layer-wise runtime exists so far; "
            f"launch/plan.py predicts the baseline"
        )
    return problems


def fail(env: DistEnv, message: str, code: int) -> int:
    print(f"error (rank {env.rank}): {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = read_env(args.local_rank)
    if args.results is not None and not args.results.parent.resolve().is_dir():
        return fail(
            env, f"--results: folder {str(args.results.parent)!r} does not exist", EXIT_USAGE
        )
    try:
        config = load_config(args.config)
        problems = check_world(config, env)
        if problems:
            raise ConfigError(problems, str(args.config))
        plan = make_plan(config)
    except LayerwiseError as error:
        return fail(env, str(error), EXIT_USAGE)
    warnings.filterwarnings("ignore", module="megatron")
    from layerwise.runtime.session import run

    report = run(config, plan, env, verify=args.verify)
    if env.is_main:
        print(report.table, flush=True)
        if args.results is not None and report.ok:
            write_atomically(args.results, (json.dumps(report.results, indent=2) + "\n").encode())
    return 0 if report.ok else EXIT_FAILED
