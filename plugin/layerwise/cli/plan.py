"""`layerwise-plan --config FILE [--json OUT] [--plot OUT.png|.svg|.pdf] [--emit ENGINE|all]
[--layout recommended|config|baseline|layerwise] [--max-batch]` (or launch/plan.py): plan both
layouts, write the chosen one as the settings of the engines users deploy on (report/emit.py),
and price every layout at the largest batch it fits (planner/capacity.py)."""

import argparse
import json
import sys
from pathlib import Path

from layerwise.cli.common import plan_for_run, write_atomically
from layerwise.cli.outputs import output_problems
from layerwise.config.load import absolute_paths, load_config
from layerwise.errors import ExitCode, LayerwiseError
from layerwise.planner.capacity import AtLargest, at_largest_batches
from layerwise.planner.plan import label
from layerwise.planner.records import Layout, Plan
from layerwise.report.emit import ENGINES, emit, emit_dict, emit_text
from layerwise.report.plan_json import candidate_dict, plan_dict
from layerwise.report.plot import PLOT_FORMATS
from layerwise.report.text import largest_batch_table, render
from layerwise.tune.candidates import candidate_config, sizes_of


def plot_format(path: Path) -> str:
    """The image format a --plot path asks for: its suffix, lower case, without the dot."""
    return path.suffix.lower().lstrip(".")


def _outputs(args: argparse.Namespace) -> list[str]:
    """Problems with the output paths, found before any work is done."""
    problems = [
        problem
        for flag, path in (("--json", args.json), ("--plot", args.plot))
        for problem in output_problems(flag, path, [args.config])
    ]
    if args.json is not None and args.plot is not None and args.json == args.plot:
        problems.append(f"--json and --plot: both {str(args.json)[:200]!r}")
    if args.plot is not None and plot_format(args.plot) not in PLOT_FORMATS:
        problems.append(
            f"--plot: {str(args.plot)!r} must end in "
            f"{', '.join('.' + fmt for fmt in PLOT_FORMATS)} (the suffix picks the format)"
        )
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            problems.append("--plot: needs matplotlib (pip install 'layerwise[plot]')")
    return problems


def with_recommended_config(document: dict, plan: Plan, config_path: Path) -> dict:
    """The plan's JSON with `recommendation.config`: the config file's own data (paths made
    absolute) set to run the recommended layout, so `launch/infer.py` runs it as is."""
    if not plan.candidates:
        return document
    data = absolute_paths(json.loads(config_path.read_text()), config_path.parent)
    top = plan.candidates[0]
    document["recommendation"]["config"] = candidate_config(data, top.mode, **sizes_of(top))
    return document


def largest_dict(row: AtLargest) -> dict:
    """One layout at its largest batch, for the JSON."""
    if row.layout is None:
        return {"label": row.label, "batch_size": None, "error": row.error}
    return {"label": row.label, "batch_size": row.batch_size, **candidate_dict(row.layout)}


def emitted_layout(plan: Plan, which: str) -> Layout | None:
    """The layout --emit writes: the plan's recommendation (its best candidate), the one the
    config runs, or the config's baseline or layer-wise layout."""
    if which in ("baseline", "layerwise"):
        return plan.layout(which)
    if which == "config":
        return plan.layout(plan.config.mode)
    return plan.candidates[0] if plan.candidates else plan.layout(plan.recommended)


def emit_document(plan: Plan, which: str) -> dict:
    """The `emit` key of the plan's JSON: every engine's settings for the chosen layout."""
    layout = emitted_layout(plan, which)
    if layout is None:
        return {}
    found = emit(plan.config.model, layout)
    return {
        "layout": which,
        "label": label(layout),
        **{engine: emit_dict(settings) for engine, settings in found.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="launch/plan.py",
        description=(
            "Predict throughput, TPOT, bubble and memory of the baseline (Megatron TP x PP) "
            "and the layer-wise layout for one config, before any GPU is touched."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, help="run config (JSON)")
    parser.add_argument("--json", type=Path, help="write the plan as JSON here")
    parser.add_argument(
        "--plot", type=Path, help="draw both pipeline timelines to this .png, .svg or .pdf"
    )
    parser.add_argument(
        "--emit",
        choices=(*ENGINES, "all"),
        help="print the layout as this engine's settings (all: every engine's)",
    )
    parser.add_argument(
        "--layout",
        choices=("recommended", "config", "baseline", "layerwise"),
        default="recommended",
        help="what --emit and the JSON's emit write: the plan's recommendation (default), the "
        "layout the config runs, or the config's baseline or layer-wise layout",
    )
    parser.add_argument(
        "--max-batch",
        action="store_true",
        help="also price every layout at the largest batch it fits, best decode tokens/s first",
    )
    args = parser.parse_args(argv)
    problems = _outputs(args)
    if problems:
        print("error:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return ExitCode.USAGE
    try:
        plan = plan_for_run(load_config(args.config))
    except LayerwiseError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    wanted = args.max_batch or plan.config.max_batch  # batch "max": compared at their own
    largest = at_largest_batches(plan.config, plan.candidates) if wanted else None
    outputs = {}
    if args.json is not None:
        document = with_recommended_config(plan_dict(plan), plan, args.config)
        document["emit"] = emit_document(plan, args.layout)
        if largest is not None:
            document["largest_batch"] = [largest_dict(row) for row in largest]
        outputs[args.json] = (json.dumps(document, indent=2) + "\n").encode()
    if args.plot is not None:
        from layerwise.report.plot import timeline

        outputs[args.plot] = timeline(plan, plot_format(args.plot))
    for path, data in outputs.items():
        write_atomically(path, data)
    print(render(plan))
    if largest is not None:
        print("\n" + largest_batch_table(largest))
    layout = emitted_layout(plan, args.layout) if args.emit else None
    if layout is not None:
        engines = ENGINES if args.emit == "all" else (args.emit,)
        title = f"\n{label(layout)} ({args.layout}) on the engines' own settings:"
        print(emit_text(title, emit(plan.config.model, layout, engines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
