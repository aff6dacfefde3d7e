#!/usr/bin/env bash
# For a lent GPU machine (one GPU, Python 3.12, torch with CUDA, no deepspeed/megatron-core):
# both runtimes (megatron-core baseline at TP1 x PP1, layer-wise DeepSpeed pipeline of one stage)
# through launch/compare.py with --verify, each against a raw loop of the same layers (overhead,
# target < 3%), and the measured figures beside the plan's (prediction error), for
# configs/gpu1_dense_layerwise.json. Prepare the wheels (cp312, for Python 3.12 there) on a
# machine with network access first:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl megatron-core==0.19.2 pydantic==2.14.3 \
#     pydantic-core==2.50.4 annotated-types typing-inspection 'typing-extensions>=4.16' hjson
#   pip wheel --no-deps -w .whl deepspeed==0.19.8
#   echo /.whl/ >> .git/info/exclude
# then run this with carry [".whl"]; results land in $OUT (default out/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD/plugin" PYTHONWARNINGS=ignore
config=${CONFIG:-configs/gpu1_dense_layerwise.json}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/gpu.txt" || echo cpu > "$out/gpu.txt"
python3 benchmarks/raw_loop.py --config "$config" --json "$out/raw.json"
python3 launch/compare.py --launcher torchrun --config "$config" --verify --results-dir "$out" \
  | tee "$out/compare.txt"
python3 - "$out" "$(basename "$config" .json)" <<'PY'
import json, sys
out, stem = sys.argv[1:]
raw = json.load(open(f"{out}/raw.json"))
summary = {}
for name in (stem, f"{stem}.baseline"):
    run = json.load(open(f"{out}/{name}.results.json"))
    measured, predicted = run["measured"], run["predicted"]
    figures = {"verify_ok": run["verify"]["ok"]}
    figures["overhead_prefill"] = 1 - measured["tps"] / raw["tps"]
    figures["prediction_error_tps"] = predicted["tps"] / measured["tps"] - 1
    if measured.get("tpot_ms") and raw.get("tpot_ms"):  # gpt decode needs the KV cache
        figures["overhead_decode"] = measured["tpot_ms"] / raw["tpot_ms"] - 1
        figures["prediction_error_tpot"] = predicted["tpot_ms"] / measured["tpot_ms"] - 1
    summary[run["mode"]] = figures
print(json.dumps(summary, indent=2))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
PY
