#!/usr/bin/env bash
# For a lent GPU machine (one GPU, Python 3.12, torch with CUDA, no deepspeed/megatron-core):
# the layer-wise runtime against a raw loop of the same layers (overhead, target < 3%) and the
# measured figures beside the plan's (prediction error, target < 10%), for
# configs/gpu1_dense_layerwise.json. Prepare the wheels here first:
#   bash ../shared/tools/gpu-wheels.sh .whl && echo /.whl/ >> .git/info/exclude
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
python3 -m torch.distributed.run --nproc_per_node 1 launch/infer.py --config "$config" \
  --verify --results "$out/infer.json" | tee "$out/infer.txt"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
raw, run = (json.load(open(f"{out}/{name}.json")) for name in ("raw", "infer"))
summary = {
    "overhead_prefill": 1 - run["measured"]["tps"] / raw["tps"],
    "overhead_decode": run["measured"]["tpot_ms"] / raw["tpot_ms"] - 1,
    "prediction_error_tps": run["predicted"]["tps"] / run["measured"]["tps"] - 1,
    "prediction_error_tpot": run["predicted"]["tpot_ms"] / run["measured"]["tpot_ms"] - 1,
}
print(json.dumps(summary, indent=2))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
PY
