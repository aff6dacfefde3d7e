"""What rank 0 prints and writes after a run: measured beside predicted, for either layout."""

import statistics
from dataclasses import dataclass

from layerwise.config.sections import RunConfig
from layerwise.hardware.spec import HardwareSpec
from layerwise.planner.records import Layout
from layerwise.report.labels import FIGURES, Figure, figures
from layerwise.report.text import describe
from layerwise.runtime.session import MOCK_DEVICE, Measurement


@dataclass(frozen=True)
class Report:
    """The table for stdout and the results JSON; `ok` is False when verification failed."""

    table: str
    results: dict
    ok: bool


def _row(figure: Figure, predicted: float | None, measured: float | None) -> str:
    def cell(value: float | None) -> str:
        return "not measured" if value is None else format(value, figure.fmt)

    ratio = f"{measured / predicted:.3f}" if measured is not None and predicted else "-"
    return f"{figure.label:<26}{cell(predicted):>16}{cell(measured):>16}{ratio:>12}"


def calibration(hardware: HardwareSpec) -> str:
    """Where a profile's figures come from, in a few words."""
    provenance = hardware.provenance
    if not provenance:
        return "not written by launch/calibrate.py"
    return f"calibrated on {provenance.get('device', '?')}, {provenance.get('date', '?')}"


def report(config: RunConfig, layout: Layout, world_size: int, measurement: Measurement) -> Report:
    """Median measured figures beside the plan's, as rank 0's table and results JSON."""
    prefill_s, decode_s = measurement.prefill_s, measurement.decode_s
    tokens = config.workload.prefill_tokens
    batch = config.workload.batch_size
    predicted = figures(layout.tps, layout.tpot_s * 1e3, batch)
    measured = figures(
        tokens / statistics.median(prefill_s),
        statistics.median(decode_s) * 1e3 if decode_s else None,
        batch,
    )
    mock = measurement.device == MOCK_DEVICE
    lines = [
        f"{layout.mode} run of {config.source}: {config.model.name} on {world_size} ranks"
        + (" (CPU mock mode: gloo)" if mock else "")
        + f"; predictions from profile {config.gpu.name} ({calibration(config.gpu)})",
        f"{describe(layout)}; median of {config.run.timed_iters} timed runs after "
        f"{config.run.warmup_iters} warm-up",
        f"{'':<26}{'PREDICTED':>16}{'MEASURED':>16}{'meas/pred':>12}",
        *(_row(figure, predicted[figure.key], measured[figure.key]) for figure in FIGURES),
    ]
    if not decode_s:
        lines.append("decode not timed: workload.decode_steps = 0")
    results = {
        "mode": config.mode,
        "config": config.source,
        "model": config.model.name,
        "world_size": world_size,
        "device": measurement.device,
        "layout": describe(layout),
        "predicted": predicted,
        "measured": {**measured, "prefill_s": list(prefill_s), "decode_s": list(decode_s)},
    }
    verdict, ok = measurement.verdict, True
    if verdict is not None:
        ok = verdict.ok
        decided, positions = verdict.greedy_decided
        greedy = {
            None: "",
            True: f"; greedy tokens equal ({decided} of {positions} beyond a near-tie)",
            False: "; greedy tokens DIFFER",
        }
        lines.append(
            f"verify: {verdict.chunks} prefill chunk(s) and {verdict.decode_steps} decode "
            f"step(s) vs one process with the same KV cache: max abs error "
            f"{verdict.max_abs_error:.3e}, relative {verdict.relative_error:.3e} "
            f"(tolerance {verdict.tolerance:.0e}){greedy[verdict.greedy_match]}: "
            f"{'ok' if ok else 'FAILED'}"
        )
        results["verify"] = {
            "chunks": verdict.chunks,
            "decode_steps": verdict.decode_steps,
            "greedy_match": verdict.greedy_match,
            "greedy_decided": list(verdict.greedy_decided),
            "max_abs_error": verdict.max_abs_error,
            "relative_error": verdict.relative_error,
            "tolerance": verdict.tolerance,
            "ok": ok,
        }
    results["ok"] = ok
    return Report("\n".join(lines), results, ok)
