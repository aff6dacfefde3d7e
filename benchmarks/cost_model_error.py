"""Print the cost model's error against each H200 measurement in configs/hardware/measured/.

Run: python benchmarks/cost_model_error.py  (no GPU needed: it compares predictions with the
stored measurements). Rows the profile was fitted on (the file's "fitted_on") are marked
"fit": their error checks consistency only; the median and max are over the held-out rows.
"""

import json
import statistics
from pathlib import Path

from layerwise.costmodel.kernels import Chunk, _gemm, kernel_time, layer_cost
from layerwise.hardware.spec import find_hardware_profile, load_hardware
from layerwise.model.spec import MODEL_PRESETS

ANCHORS = Path(__file__).resolve().parents[1] / "configs/hardware/measured"


def predicted_ms(hardware, case: str, tokens: int) -> float | None:
    dense = MODEL_PRESETS["seed-dense"]
    chunk = Chunk(tokens=tokens, sequences=tokens, context=1, decode=False)
    if case == "full":
        return layer_cost(dense, hardware, 0, chunk, 1, 2, 0.0).compute_s * 1e3
    if case == "tp8":
        pair = (layer_cost(dense, hardware, layer, chunk, 8, 2, 0.0) for layer in (0, 1))
        return sum(cost.compute_s for cost in pair) * 1e3
    if case.startswith("stream_c"):  # 16 layers over all tokens, chunk by chunk
        size = int(case.removeprefix("stream_c"))
        per_chunk = layer_cost(
            dense,
            hardware,
            0,
            Chunk(tokens=size, sequences=size, context=1, decode=False),
            1,
            2,
            0.0,
        )
        return per_chunk.compute_s * 16 * (tokens // size) * 1e3
    if case in ("l2w_32MB", "hbmw_512MB"):
        side = 4096 if case == "l2w_32MB" else 16384
        kernel = _gemm(case, tokens, side, side, 2)
        return kernel_time(hardware, kernel, tokens, False, True) * 1e3
    return None


def main() -> None:
    hardware = load_hardware(find_hardware_profile("h200"))
    for path in sorted(ANCHORS.glob("h200-*.json")):
        data = json.loads(path.read_text())
        fitted = {(row["case"], row["tokens"]) for row in data.get("fitted_on", [])}
        print(f"{path.name} ({data['device']}), profile {hardware.name}")
        print(f"{'case':>13} {'tokens':>7} {'measured ms':>12} {'predicted ms':>13} {'error':>7}")
        held_out = []
        for row in data["results"]:
            guess = predicted_ms(hardware, row["case"], row["tokens"])
            if guess is None:
                continue
            error = guess / row["ms"] - 1
            fit = (row["case"], row["tokens"]) in fitted
            if not fit:
                held_out.append(abs(error))
            print(
                f"{row['case']:>13} {row['tokens']:>7} {row['ms']:>12.4f} {guess:>13.4f} "
                f"{error:>+7.1%}{'  fit' if fit else ''}"
            )
        if held_out:
            print(
                f"held out: {len(held_out)} rows, median |error| "
                f"{statistics.median(held_out):.1%}, max {max(held_out):.1%}"
            )


if __name__ == "__main__":
    main()
