"""`layerwise-tune` (launch/tune.py): run the layouts the cost model ranks best for a config on
this machine and keep the one that measures best.

The candidates (tune/candidates.py) are the config's plan's layouts, ranked by the predicted
figure of the objective (throughput: prefill tokens/s; latency: TPOT). The best `--top` K run
`--repeats` R rounds, interleaved (A B C, A B C, ...), each run through the runtime quietly
(`cli.common.run_quietly`, torchrun on the config's world size). It prints one table (predicted,
measured median and range, both ranks), Kendall's tau and the regret of the model's pick
(tune/select.py), writes the winner's config (`--out`, and best.json in the results folder) and
every row to tune.json. A candidate that fails is shown with its error and skipped; the exit
code is 1 only when all fail. Ctrl-C or SIGTERM ends every rank it started."""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from layerwise.cli.common import run_quietly, runtime_problems, write_atomically
from layerwise.cli.outputs import folder_problems, output_problems
from layerwise.config.load import load_config
from layerwise.config.sections import OBJECTIVES
from layerwise.errors import AllRunsFailedError, ConfigError, ExitCode, LayerwiseError
from layerwise.tune.candidates import (
    Candidate,
    Candidates,
    ranked_candidates,
    with_timed_runs,
)
from layerwise.tune.objective import figure_of
from layerwise.tune.select import (
    FAILURES,
    Outcome,
    Row,
    Summary,
    measure_rounds,
    ranked_rows,
    summarise,
    top,
)

INTERRUPTED = 128 + 2  # a shell's exit status for "ended by SIGINT"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch/tune.py",
        description=(
            "Run the best predicted layouts of a config on this machine, interleaved over "
            "rounds, and keep the one that measures best."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, help="run config (JSON)")
    parser.add_argument(
        "--top", type=int, default=4, help="run the K best predicted candidates (default 4)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of every candidate (default 3)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=20,
        help="timed runs in each launch, whose median is the round's figure (default 20; "
        "the config's run.timed_iters is for one-off runs)",
    )
    parser.add_argument(
        "--objective", choices=OBJECTIVES, help="rank by this (default: the config's objective)"
    )
    parser.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="leave out the control (the best layer-wise candidate with an uneven exact split, "
        "run at an even split), which is run besides the top K by default",
    )
    parser.add_argument("--out", type=Path, help="write the winner's run config here")
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="every run's config and results, tune.json and best.json (default: a new "
        "temporary folder, kept and named at the end)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=600.0, help="seconds one run may take (default 600)"
    )
    return parser.parse_args(argv)


def argument_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the arguments, found before anything is planned or run."""
    problems = []
    for flag, value in (("--top", args.top), ("--repeats", args.repeats), ("--runs", args.runs)):
        if value < 1:
            problems.append(f"{flag}: {value} must be at least 1")
    if not args.timeout_s > 0:
        problems.append(f"--timeout-s: {args.timeout_s} must be above 0")
    problems += folder_problems("--results-dir", args.results_dir)
    problems += output_problems("--out", args.out, [args.config])
    return problems


def prepared(args: argparse.Namespace) -> tuple[str, Candidates]:
    """The objective and the best `--top` candidates; LayerwiseError (a bad config), OSError or
    ValueError before anything runs."""
    config = load_config(args.config)
    if runtime_problems(config):
        raise ConfigError(runtime_problems(config), str(args.config))
    objective = args.objective or config.objective
    if objective == "latency" and config.workload.decode_steps == 0:
        problem = "objective latency ranks by TPOT, which needs workload.decode_steps > 0"
        raise ConfigError([problem], str(args.config))
    data = json.loads(args.config.read_text())
    found = ranked_candidates(
        data, args.config.parent, objective, limit=args.top, source=str(args.config)
    )
    return objective, found


def with_control(chosen: list[Candidate], control: Candidate | None) -> list[Candidate]:
    """The top candidates and, last, the even-split control when it is not among them."""
    if control is None or control.name in {candidate.name for candidate in chosen}:
        return chosen
    return [*chosen, control]


def run_name(candidate: Candidate, round_: int) -> str:
    """The file stem of one run in the results folder: 'layerwise-2x2.r1'."""
    return f"{candidate.name.replace(' ', '-')}.r{round_}"


def run_all(chosen: list[Candidate], args: argparse.Namespace, folder: Path) -> list[Outcome]:
    """Every chosen candidate `--repeats` rounds, interleaved, quietly, under a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(chosen) * args.repeats, desc="tune", unit="run", file=sys.stderr)

    def measure(candidate: Candidate, round_: int) -> dict:
        bar.set_postfix_str(f"{candidate.name}, round {round_}/{args.repeats}")
        try:
            data = with_timed_runs(candidate.config_data, args.runs)
            results = run_quietly(data, folder, run_name(candidate, round_), args.timeout_s)
        except FAILURES:
            bar.total -= args.repeats - round_  # its later rounds are skipped
            raise
        finally:
            bar.update()
        return results["measured"]

    with bar:
        return measure_rounds(chosen, args.repeats, measure, args.objective)


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def row_line(row: Row, fmt: str) -> str:
    if not row.values:
        measured, spread, rank = "FAILED", "", "-"
    else:
        measured = cell(row.median, fmt)
        spread = f"{cell(row.low, fmt)}..{cell(row.high, fmt)}"
        rank = str(row.measured_rank)
    return (
        f"{row.name:<22}{cell(row.predicted, fmt):>14}{measured:>14}{spread:>26}"
        f"{row.predicted_rank:>11}{rank:>11}"
    )


def overlap_sentence(summary: Summary, repeats: int, fmt: str) -> str:
    rows = {row.name: row for row in summary.rows}
    winner = rows[summary.winner]
    if summary.runner_up is None:
        return "one candidate measured: nothing to compare it with."
    if repeats == 1:
        return "one round each: no range to judge the gap by (--repeats 3 gives one)."
    second = rows[summary.runner_up]
    ranges = (
        f"{summary.runner_up} {cell(second.low, fmt)}..{cell(second.high, fmt)}, "
        f"{summary.winner} {cell(winner.low, fmt)}..{cell(winner.high, fmt)}"
    )
    if summary.overlap:
        return (
            f"the runner-up's range overlaps the winner's ({ranges}): their order is not sure; "
            "more --repeats would tell."
        )
    return f"the runner-up's range lies clear of the winner's ({ranges})."


def table(summary: Summary, title: str, repeats: int) -> str:
    """The rows in predicted order, then winner, tau, regret and the overlap sentence."""
    figure = figure_of(summary.objective)
    fmt = figure.fmt
    rounds = f"{repeats} round{'s' if repeats != 1 else ''}, interleaved"
    lines = [
        f"{title}; objective {summary.objective}: {figure.label}, {rounds}",
        f"{'candidate':<22}{'predicted':>14}{'measured':>14}{'range (min..max)':>26}"
        f"{'pred rank':>11}{'meas rank':>11}",
        *(row_line(row, fmt) for row in summary.rows),
        *(f"  {row.name} failed: {row.error}" for row in summary.rows if row.error),
        f"winner: {summary.winner} (best measured median); the model's pick: {summary.pick}",
        f"Kendall tau, predicted vs measured order: {cell(summary.tau, '.2f')} "
        f"over {sum(1 for row in summary.rows if row.values)} measured candidates",
        f"regret: {summary.regret:.3f} (the pick's measured figure as a fraction of the "
        "winner's; 1 = the model picked the winner)",
        f"paired regret: {summary.paired_regret:.3f} (the same within each round, median; "
        f"by round: {', '.join(f'{ratio:.3f}' for ratio in summary.round_regrets)})",
        overlap_sentence(summary, repeats, fmt),
    ]
    return "\n".join(lines)


def tune_json(
    args: argparse.Namespace,
    objective: str,
    chosen: list[Candidate],
    outcomes: list[Outcome],
    extra: dict,
) -> dict:
    """Every row (config, predicted, each round's measured figures, median, range, ranks, error)
    and the summary's figures in `extra`."""
    rows = ranked_rows(chosen, outcomes, objective)
    by_name = {outcome.name: outcome for outcome in outcomes}
    return {
        "config": str(args.config),
        "objective": objective,
        "figure": figure_of(objective).key,
        "repeats": args.repeats,
        "runs": args.runs,
        "top": args.top,
        "rows": [
            {
                "name": candidate.name,
                "layout": candidate.layout,
                "config": candidate.config_data,
                "predicted": candidate.predicted,
                "runs": list(by_name[candidate.name].runs),
                "median": row.median,
                "min": row.low,
                "max": row.high,
                "predicted_rank": row.predicted_rank,
                "measured_rank": row.measured_rank,
                "error": row.error,
            }
            for candidate, row in zip(chosen, rows)
        ],
        **extra,
    }


def summary_fields(summary: Summary) -> dict:
    return {
        "winner": summary.winner,
        "runner_up": summary.runner_up,
        "overlap": summary.overlap,
        "pick": summary.pick,
        "regret": summary.regret,
        "paired_regret": summary.paired_regret,
        "round_regrets": list(summary.round_regrets),
        "kendall_tau": summary.tau,
    }


def write_json(path: Path, data: dict) -> None:
    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode())


def report(
    args: argparse.Namespace, found: Candidates, chosen: list[Candidate], outcomes, folder: Path
) -> int:
    """Summarise, print and write the outputs; ExitCode.INTERNAL when every candidate failed."""
    objective = args.objective
    refused = {"refused": list(found.refused)}
    try:
        summary = summarise(chosen, outcomes, objective)
    except AllRunsFailedError as error:
        write_json(folder / "tune.json", tune_json(args, objective, chosen, outcomes, refused))
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.INTERNAL
    winner = next(candidate for candidate in chosen if candidate.name == summary.winner)
    outputs = [folder / "best.json", *([args.out] if args.out else [])]
    for path in outputs:
        write_json(path, winner.config_data)
    extra = {**summary_fields(summary), **refused, "best": [str(path) for path in outputs]}
    write_json(folder / "tune.json", tune_json(args, objective, chosen, outcomes, extra))
    first = chosen[0].config_data
    title = f"tune: {args.config} on {first['hardware']['gpus']} ranks"
    print(table(summary, title, args.repeats))
    print(f"winner's config: {', '.join(str(path) for path in outputs)}; rows: {folder}/tune.json")
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = argument_problems(args)
    if problems:
        print("error:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return ExitCode.USAGE
    try:
        objective, found = prepared(args)
    except (LayerwiseError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    args.objective = objective
    for refusal in found.refused:
        print(f"not a candidate: {refusal}", file=sys.stderr)
    if not found.ranked:
        print(f"error: {args.config}: no layout of it can run", file=sys.stderr)
        return ExitCode.USAGE
    chosen = with_control(top(found.ranked, args.top), found.control if args.control else None)
    folder = args.results_dir or Path(tempfile.mkdtemp(prefix="layerwise-tune-"))
    try:
        outcomes = run_all(chosen, args, folder)
    except KeyboardInterrupt:
        print("interrupted: every rank it started was ended", file=sys.stderr)
        return INTERRUPTED
    return report(args, found, chosen, outcomes, folder)


if __name__ == "__main__":
    sys.exit(main())
