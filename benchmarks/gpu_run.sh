#!/usr/bin/env bash
# One script for a lent GPU machine (one GPU, Python 3.12, torch with CUDA, no deepspeed or
# megatron-core, no network): install the carried wheels, calibrate this GPU for the one-GPU
# configs, run benchmarks/predict_vs_measure.py on it (cases the calibration never ran), check
# runtime overhead and --verify against a raw loop, run the test suite on it, and write
# $OUT/summary.json with the profile. Everything lands in $OUT (default out/).
#
# Parts, so that each fits one device call of 10 minutes (PARTS, default all of them):
#   calibrate  launch/calibrate.py -> $OUT/profile.yaml                          (~3 min)
#   predict    predict_vs_measure --set gpu with that profile                    (~5 min)
#   overhead   raw loop vs both runtimes with --verify (configs/gpu1_dense)      (~2 min)
#   tests      the pytest suite on the GPU                                        (~4 min)
# e.g. PARTS="calibrate predict" first, then PARTS="overhead tests" on the same warm machine.
#
# Wheels (cp312) prepared beforehand on a machine with network access, into .whl/ (which
# .git/info/exclude lists), carried with carry [".whl"]:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl megatron-core==0.16.1 pydantic pydantic-core \
#     annotated-types typing-inspection 'typing-extensions>=4.16' hjson pytest pluggy \
#     iniconfig packaging pyyaml
#   pip wheel --no-deps -w .whl deepspeed==0.19.8
# Test it on CPU first: PYTHON=.venv/bin/python OUT=/tmp/out PARTS=calibrate bash benchmarks/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
parts=${PARTS:-calibrate predict overhead tests}
py=${PYTHON:-python3}
mkdir -p "$out"
if [ -d .whl ] && ! "$py" -c "import deepspeed, megatron.core" 2>/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD/plugin" PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/gpu.txt" || echo cpu > "$out/gpu.txt"
configs=(configs/gpu1_dense_layerwise.json configs/gpu1_gpt_layerwise.json
         configs/gpu1_llama8b_layerwise.json)
if ! "$py" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  configs=(configs/mock_dense_baseline.json)  # a CPU dry run of the same steps
fi
profile="$(cd "$out" && pwd)/profile.yaml"

for part in $parts; do
  case $part in
    calibrate)
      args=()
      for config in "${configs[@]}"; do args+=(--config "$config"); done
      "$py" launch/calibrate.py "${args[@]}" --out "$profile" | tee "$out/calibrate.txt"
      ;;
    predict)
      "$py" benchmarks/predict_vs_measure.py --profile "$profile" \
        --json "$out/predict_vs_measure.json" | tee "$out/predict_vs_measure.txt"
      ;;
    overhead)
      config=${configs[0]}
      "$py" benchmarks/raw_loop.py --config "$config" --json "$out/raw.json"
      "$py" launch/compare.py --launcher torchrun --config "$config" --verify --repeats 1 \
        --results-dir "$out" | tee "$out/compare.txt"
      ;;
    tests)
      "$py" -m pytest -q -p no:cacheprovider tests 2>&1 | tail -40 > "$out/pytest.txt" || true
      tail -3 "$out/pytest.txt"
      ;;
    *) echo "unknown part: $part (calibrate, predict, overhead, tests)" >&2; exit 2 ;;
  esac
done

"$py" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
summary = {"gpu": (out / "gpu.txt").read_text().strip()}
if (out / "profile.yaml").exists():
    summary["profile"] = (out / "profile.yaml").read_text()
if (out / "predict_vs_measure.json").exists():
    found = json.loads((out / "predict_vs_measure.json").read_text())
    summary["predict_vs_measure"] = {
        "median_abs_error": found["median_abs_error"],
        "max_abs_error": found["max_abs_error"],
        "rows": [{k: row[k] for k in ("case", "figure", "predicted", "measured", "error")}
                 for row in found["rows"]],
    }
if (out / "raw.json").exists():
    raw = json.loads((out / "raw.json").read_text())
    for run in sorted(out.glob("*.results.json")):
        result = json.loads(run.read_text())
        summary.setdefault("overhead", {})[result["mode"]] = {
            "verify_ok": result.get("verify", {}).get("ok"),
            "overhead_prefill": 1 - result["measured"]["tps"] / raw["tps"],
        }
if (out / "pytest.txt").exists():
    summary["pytest"] = (out / "pytest.txt").read_text().strip().splitlines()[-1:]
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: v for k, v in summary.items() if k != "profile"}, indent=2)[:3000])
PY
