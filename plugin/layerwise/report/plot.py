"""Plots as PNG, SVG or PDF bytes (matplotlib, imported only when plotting): both layouts'
pipeline timelines, and a comparison's predicted against measured figures."""

import colorsys
import io

from layerwise.planner.records import Layout, Plan
from layerwise.report.labels import PLOTTED

MAX_STAGES = 32
MAX_MICRO_BATCHES = 12
PLOT_FORMATS = ("png", "svg", "pdf")
"""What --plot writes, chosen by the file's suffix."""


def micro_batch_colours(count: int) -> list[str]:
    """One colour per micro-batch, hues spread evenly around the wheel, so none repeats however
    many micro-batches are shown (matplotlib's ten-colour cycle would)."""
    return [
        "#{:02x}{:02x}{:02x}".format(
            *(round(c * 255) for c in colorsys.hsv_to_rgb(j / count, 0.65, 0.85))
        )
        for j in range(count)
    ]


def schedule(stage_times: list[float], micro_batches: int) -> list[list[tuple[float, float]]]:
    """(start, end) of each micro-batch on each stage of a synchronous pipeline:
    end[s][j] = max(end[s-1][j], end[s][j-1]) + t[s]."""
    ends: list[list[float]] = []
    spans = []
    for s, duration in enumerate(stage_times):
        row, stage_spans = [], []
        for j in range(micro_batches):
            start = max(ends[s - 1][j] if s else 0.0, row[j - 1] if j else 0.0)
            row.append(start + duration)
            stage_spans.append((start, start + duration))
        ends.append(row)
        spans.append(stage_spans)
    return spans


def _draw(axis, layout: Layout | None, title: str) -> None:
    if layout is None:
        axis.set_title(f"{title}: does not fit")
        axis.axis("off")
        return
    stages = layout.stages[:MAX_STAGES]
    shown = min(layout.micro_batches, MAX_MICRO_BATCHES)
    spans = schedule([stage.prefill_s * 1e3 for stage in stages], shown)
    colours = micro_batch_colours(shown)
    for s, stage_spans in enumerate(spans):
        axis.broken_barh([(a, b - a) for a, b in stage_spans], (s - 0.4, 0.8), facecolors=colours)
    extra = []
    if len(layout.stages) > MAX_STAGES:
        extra.append(f"first {MAX_STAGES} of {len(layout.stages)} stages")
    if layout.micro_batches > shown:
        extra.append(f"first {shown} of {layout.micro_batches:,} micro-batches")
    axis.set_title(
        f"{title} (predicted): {layout.tps:,.0f} tokens/s, bubble "
        f"{layout.bubble_fraction:.1%}" + (f" [{'; '.join(extra)}]" if extra else ""),
        fontsize=9,
    )
    axis.set_ylabel("stage")
    axis.set_yticks(range(0, len(stages), max(1, len(stages) // 16)))
    axis.set_xlabel("ms")
    axis.invert_yaxis()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _save(figure, fmt: str = "png") -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=100)
    _pyplot().close(figure)
    return buffer.getvalue()


def timeline_png(plan: Plan) -> bytes:
    """Both layouts' prefill pipelines as PNG bytes."""
    return timeline(plan, "png")


def timeline(plan: Plan, fmt: str) -> bytes:
    """Both layouts' prefill pipelines, one panel each, as bytes of `fmt` (PLOT_FORMATS)."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(2, 1, figsize=(11, 7))
    _draw(axes[0], plan.baseline, f"baseline TP{plan.config.baseline.tensor_parallel}")
    _draw(axes[1], plan.layerwise, "layerwise")
    figure.suptitle(
        f"{plan.config.model.name} on {plan.config.hardware.gpus} x "
        f"{plan.config.gpu.name}: one colour per micro-batch"
    )
    return _save(figure, fmt)


def predicted_vs_measured_png(runs: list[dict]) -> bytes:
    """One panel per figure, one point per run (results JSON of launch/infer.py), log-log, with
    the line measured = predicted."""
    figure, axes = _pyplot().subplots(1, len(PLOTTED), figsize=(12, 4))
    for axis, shown in zip(axes, PLOTTED):
        key, title = shown.key, shown.plot_title
        points = [
            (run["predicted"][key], run["measured"][key], run["mode"])
            for run in runs
            if run["measured"][key] is not None
        ]
        for predicted, measured, mode in points:
            axis.scatter([predicted], [measured], label=mode, s=40)
        values = [value for point in points for value in point[:2]]
        if values:
            low, high = min(values) / 2, max(values) * 2
            axis.plot([low, high], [low, high], "k--", linewidth=0.8, label="measured = predicted")
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.legend(fontsize=8)
        axis.set_title(title if values else f"{title}: not measured", fontsize=10)
        axis.set_xlabel("predicted")
        axis.set_ylabel("measured")
    figure.suptitle(f"{runs[0]['model']} on {runs[0]['world_size']} ranks ({runs[0]['device']})")
    return _save(figure)
