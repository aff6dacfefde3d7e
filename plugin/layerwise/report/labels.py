"""The figures every table and plot names, with one label each: the runtime's table, compare's
table, tune's table and the predicted-vs-measured plot read them here, so a figure is called
the same everywhere; `figures` makes a run's set of them, predicted or measured."""

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One figure of a run: its key in a results JSON, its table label, format and plot title."""

    key: str
    label: str
    fmt: str
    plot_title: str | None = None
    """None: not drawn in the predicted-vs-measured plot."""


FIGURES = (
    Figure(key="tps", label="prefill TPS (tokens/s)", fmt=",.0f", plot_title="prefill tokens/s"),
    Figure(key="tpot_ms", label="TPOT (ms, decode step)", fmt=".3f", plot_title="TPOT ms"),
    Figure(key="decode_tps", label="decode TPS (tokens/s)", fmt=",.0f"),
    Figure(key="inv_tps_ms", label="1/TPS (ms)", fmt=".6f", plot_title="1/TPS ms"),
)
PLOTTED = tuple(figure for figure in FIGURES if figure.plot_title is not None)


def figures(tps: float, tpot_ms: float | None, batch_size: int) -> dict:
    """Prefill tokens/s, ms per decode step of the whole batch, and decode tokens/s (one new
    token per sequence per step, all replicas together)."""
    decode_tps = batch_size / tpot_ms * 1e3 if tpot_ms else None
    return {"tps": tps, "tpot_ms": tpot_ms, "inv_tps_ms": 1e3 / tps, "decode_tps": decode_tps}
