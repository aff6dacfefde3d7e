"""`layerwise-compare` (launch/compare.py): run two layouts of one model and workload on the same
world size, interleaved over rounds (A B, A B, ...), through the runtime
(`-m layerwise.cli.infer`), and print measured (median and range over the rounds) and predicted
figures side by side.

`--config A --config B` runs both files; a single `--config A` runs A in both modes (the one key
switched). Each run's own output is shown as it comes (the launcher's INFO lines only with
--verbose), every error included; a failed run stops the comparison and its exit code is
returned. Runs on one machine (`deepspeed --num_gpus N` or `torchrun --nproc_per_node N`)."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from layerwise.cli.common import (
    infer_command,
    mark_failed,
    plan_for_run,
    runtime_problems,
    write_atomically,
)
from layerwise.cli.outputs import folder_problems, output_problems
from layerwise.cli.processes import ended_on_exit
from layerwise.config.load import absolute_paths, load_config
from layerwise.errors import ConfigError, ExitCode, LayerwiseError
from layerwise.report.labels import FIGURES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch/compare.py",
        description=(
            "Run the baseline and the layer-wise layout of one model on the same ranks and "
            "print measured beside predicted figures, with the ratio of the two layouts."
        ),
    )
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        type=Path,
        help="run config (JSON); give two, or one to run it in both modes",
    )
    parser.add_argument("--launcher", choices=("deepspeed", "torchrun"), default="deepspeed")
    parser.add_argument("--verify", action="store_true", help="pass --verify to each run")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="rounds of A then B (default 2: runs of one config on a shared CPU differ by up "
        "to ~30%%, so a second round shows the spread beside each median, while every round "
        "costs two full runs)",
    )
    parser.add_argument(
        "--results-dir", type=Path, help="keep each run's results JSON here (default: temporary)"
    )
    parser.add_argument("--plot", type=Path, help="draw predicted against measured to this PNG")
    parser.add_argument("--verbose", action="store_true", help="show every launcher log line")
    return parser.parse_args(argv)


def check_outputs(args: argparse.Namespace) -> list[str]:
    problems = []
    if args.repeats < 1:
        problems.append(f"--repeats: {args.repeats} must be at least 1")
    if len(args.config) > 2:
        problems.append(f"--config: give one or two configs, got {len(args.config)}")
    problems += folder_problems("--results-dir", args.results_dir)
    problems += output_problems("--plot", args.plot, args.config)
    return problems


def check_configs(paths: list[Path]) -> list:
    """Both runs' configs loaded and planned before anything is launched; raises ConfigError."""
    configs = [load_config(path) for path in paths]
    for config, path in zip(configs, paths):
        if runtime_problems(config):
            raise ConfigError(runtime_problems(config), str(path))
        plan_for_run(config)
    first, last = configs
    differ = [name for name in ("model", "workload") if getattr(first, name) != getattr(last, name)]
    if first.hardware.gpus != last.hardware.gpus:
        differ.append("hardware.gpus")
    if differ:
        raise ConfigError(
            [
                f"{', '.join(differ)} differ between the configs: compare one model and workload "
                f"on one world size"
            ],
            "launch/compare.py",
        )
    return configs


def switched(path: Path, folder: Path) -> Path:
    """A copy of the config in `folder` with the other mode (relative profile and hf_config
    paths made absolute, so they still resolve)."""
    load_config(path)  # a file that is not a config stops here, with its problems
    other = absolute_paths(json.loads(path.read_text()), path.parent)
    other["mode"] = "baseline" if other.get("mode") == "layerwise" else "layerwise"
    target = folder / f"{path.stem}.{other['mode']}.json"
    target.write_text(json.dumps(other, indent=2))
    return target


def run_one(args, config_path: Path, ranks: int, results: Path) -> int:
    """One launch/infer.py run; its stdout echoed (launcher log lines with --verbose only), its
    stderr passed straight through."""
    flags = (*(["--verify"] if args.verify else []), *(["--verbose"] if args.verbose else []))
    command = infer_command(args.launcher, ranks, config_path, results, flags)
    print(f"$ python {' '.join(command[1:])}", flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        with ended_on_exit(process):  # Ctrl-C or SIGTERM: every rank it started ends too
            for line in process.stdout:
                if args.verbose or not line.startswith("[20"):
                    print(line, end="", flush=True)
    return process.returncode


def cell(value, fmt: str) -> str:
    return "not measured" if value is None else format(value, fmt)


def ratio(top, bottom) -> str:
    return f"{top / bottom:.3f}" if top is not None and bottom else "-"


def verdict(check: dict | None) -> str:
    """A run's --verify result in a few words."""
    if check is None:
        return "not verified"
    greedy = {None: "", True: ", greedy tokens equal", False: ", greedy tokens DIFFER"}
    return (
        f"{'ok' if check['ok'] else 'FAILED'} (relative error {check['relative_error']:.1e}"
        f"{greedy[check.get('greedy_match')]})"
    )


def combined(rounds: list[dict]) -> dict:
    """One config's runs as one: the first run's results with each measured figure the median
    over the rounds, every round's measured figures under "rounds", and the worst verify."""
    run = dict(rounds[0])
    run["rounds"] = [each["measured"] for each in rounds]
    run["measured"] = {
        figure.key: median_of([each["measured"].get(figure.key) for each in rounds])
        for figure in FIGURES
    }
    checks = [each["verify"] for each in rounds if each.get("verify") is not None]
    if checks:
        run["verify"] = next((check for check in checks if not check["ok"]), checks[0])
    return run


def median_of(values: list) -> float | None:
    """The median, or None when any round did not measure the figure."""
    return None if any(value is None for value in values) else statistics.median(values)


def spread(run: dict, key: str, fmt: str) -> str:
    """'min..max' of a figure over the run's rounds (its one measurement without rounds)."""
    values = [each.get(key) for each in run.get("rounds", [run["measured"]])]
    if any(value is None for value in values):
        return "-"
    return f"{format(min(values), fmt)}..{format(max(values), fmt)}"


def comparison_table(runs: list[dict]) -> str:
    """Both runs' predicted figures, measured medians and ranges over the rounds, then B / A
    predicted and B / A of the measured medians."""
    a, b = runs
    rounds = len(a.get("rounds", [a["measured"]]))
    lines = [
        f"comparison: {a['model']} on {a['world_size']} ranks ({a['device']}); measured: median "
        f"and range (min..max) of {rounds} round{'s' if rounds != 1 else ''}, A B interleaved",
        *(
            f"  {name} = {run['mode']}: {run['layout']} ({run['config']})"
            for name, run in zip("AB", runs)
        ),
        f"{'':<26}{'A predicted':>13}{'A measured':>13}{'A range':>22}"
        f"{'B predicted':>13}{'B measured':>13}{'B range':>22}{'B/A pred':>10}{'B/A meas':>10}",
    ]
    for figure in FIGURES:
        key = figure.key
        row = f"{figure.label:<26}"
        for run in runs:
            predicted, measured = run["predicted"].get(key), run["measured"].get(key)
            row += f"{cell(predicted, figure.fmt):>13}{cell(measured, figure.fmt):>13}"
            row += f"{spread(run, key, figure.fmt):>22}"
        row += f"{ratio(b['predicted'].get(key), a['predicted'].get(key)):>10}"
        row += f"{ratio(b['measured'].get(key), a['measured'].get(key)):>10}"
        lines.append(row)
    verdicts = [f"{name} {verdict(run.get('verify'))}" for name, run in zip("AB", runs)]
    lines.append(f"{'verify':<26}{'; '.join(verdicts)}")
    return "\n".join(lines)


class RunStopped(Exception):
    """A run failed; the comparison stops with its exit code."""

    def __init__(self, path: Path, code: int):
        self.path, self.code = path, code
        super().__init__(f"the run of {path} failed (exit code {code})")


def run_rounds(args, paths: list[Path], ranks: int, folder: Path) -> tuple[list[dict], int]:
    """Both configs `--repeats` rounds, interleaved (A B, A B, ...): each config's runs combined,
    and the exit code to return (a failed --verify's); a failed run raises RunStopped."""
    rounds: dict[Path, list[dict]] = {path: [] for path in paths}
    code = 0
    for round_ in range(1, args.repeats + 1):
        for name, path in zip("AB", paths):
            print(f"# round {round_} of {args.repeats}: {name} = {path}", flush=True)
            results = folder / f"{path.stem}.r{round_}.results.json"
            returned = run_one(args, path, ranks, results)
            if returned not in (ExitCode.OK, ExitCode.VERIFY_FAILED):
                mark_failed(results, returned)
                raise RunStopped(path, returned)
            code = code or returned
            rounds[path].append(json.loads(results.read_text()))
            print()
    return [combined(rounds[path]) for path in paths], code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = check_outputs(args)
    if problems:
        print("error:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return ExitCode.USAGE
    with tempfile.TemporaryDirectory(prefix="layerwise-compare-") as scratch:
        paths = list(args.config)
        try:
            if len(paths) == 1:
                paths.append(switched(paths[0], Path(scratch)))
            configs = check_configs(paths)
        except (LayerwiseError, OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return ExitCode.USAGE
        try:
            folder = args.results_dir or Path(scratch)
            runs, code = run_rounds(args, paths, configs[0].hardware.gpus, folder)
        except RunStopped as stopped:
            print(f"error: {stopped}", file=sys.stderr)
            return stopped.code
        if len(args.config) == 1:  # name the switched copy after its source, not a temporary
            runs[1]["config"] = f"{args.config[0]} with mode {runs[1]['mode']!r}"
    print(comparison_table(runs))
    if args.plot is not None:
        from layerwise.report.plot import predicted_vs_measured_png

        write_atomically(args.plot, predicted_vs_measured_png(runs))
    return code


if __name__ == "__main__":
    sys.exit(main())
