"""Pipeline timelines of both layouts as a PNG (matplotlib, imported only when plotting)."""

import io

from layerwise.layouts import Layout
from layerwise.plan import Plan

MAX_STAGES = 32
MAX_MICRO_BATCHES = 12


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
    colours = [f"C{j % 10}" for j in range(shown)]
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


def timeline_png(plan: Plan) -> bytes:
    """Both layouts' prefill pipelines, one panel each; returns the PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(2, 1, figsize=(11, 7))
    _draw(axes[0], plan.baseline, f"baseline TP{plan.config.baseline.tensor_parallel}")
    _draw(axes[1], plan.layerwise, "layerwise")
    figure.suptitle(
        f"{plan.config.model.name} on {plan.config.hardware.gpus} x "
        f"{plan.config.gpu.name}: one colour per micro-batch"
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
