"""`layerwise-calibrate --config F [--out PROFILE.yaml]` (or launch/calibrate.py): measure this
machine for the config's model shapes and write a hardware profile that records its provenance.

Measured: the GEMM grid, per-kernel fixed cost and floors, weight streaming from memory and from
L2, elementwise and attention rates (calibrate/kernels.py), the host time of a layer call
(calibrate/layers.py), the pipeline engines (calibrate/schedule.py) and, with several local
ranks, p2p and all-reduce (calibrate/links.py). Copied from the config's profile: datasheet
figures, capacity, reserve, node size and the inter-node link."""

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from layerwise.calibrate.measure import measure
from layerwise.calibrate.profile import document, slug, summary, write_profile
from layerwise.cli.outputs import output_problems
from layerwise.config.load import load_config
from layerwise.errors import ConfigError, ExitCode
from layerwise.hardware.spec import load_hardware
from layerwise.runtime import logs

if TYPE_CHECKING:  # imported at run time after the CPU mock patches
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch/calibrate.py",
        description="Measure this machine (its first CUDA GPU, else the CPU as mock ranks use "
        "it) for the config's model shapes and write a hardware profile.",
        epilog="exit codes: 0 ok, 1 internal error, 2 bad input",
    )
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        action="append",
        help="run config (JSON) whose model shapes to measure; repeat for several models",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="profile to write (default: ./<device>.yaml)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer engine runs (2 micro-batch counts, 5 timed runs each): a smoke test, "
        "noisier figures",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(verbose=False)
    try:
        configs = [load_config(path) for path in args.config]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    problems = output_problems("--out", args.out, args.config)
    if args.out and args.out.suffix not in (".yaml", ".yml"):
        problems.append(f"--out: {str(args.out)[:200]!r} must end in .yaml or .yml")
    if problems:
        print(f"error: {ConfigError(problems, 'arguments')}", file=sys.stderr)
        return ExitCode.USAGE
    command = shlex.join(["python", "launch/calibrate.py", *(argv or sys.argv[1:])])
    hardware, provenance = measure(configs, command, args.quick)
    name = args.out.stem if args.out else slug(provenance["device"])
    out = args.out or Path(f"{name}.yaml")
    write_profile(out, document(hardware, provenance, name))
    load_hardware(out)  # what was written loads back
    print(summary(hardware, provenance))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
