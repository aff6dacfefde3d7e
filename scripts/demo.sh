#!/usr/bin/env bash
# The main job on CPU, set-up included: for each mock model (dense, GPT, Llama-like with GQA,
# SwiGLU, RMSNorm, RoPE and a vocabulary), the megatron-core baseline (TP2 x PP2) and the
# layer-wise DeepSpeed pipeline on 4 CPU ranks (gloo, CPU mock mode), prefill and KV-cache decode,
# both with --verify, measured beside predicted; then tune on mock-dense (the plan's three best
# layouts and the even-split control, interleaved, the winner by measurement); then the planner's
# PREDICTED figures for the seed workload on 16 H100s and for Llama-3.1-70B on 8 H200s.
# Any failure is shown and ends the script with its exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore
for model in mock_dense mock_gpt mock_llama; do
  .venv/bin/python launch/compare.py --config "configs/${model}_baseline.json" \
    --config "configs/${model}_layerwise.json" --verify --repeats 1 --results-dir out \
    --plot "out/${model}_compare.png"
  echo
done
mkdir -p out/tune
.venv/bin/python launch/tune.py --config configs/mock_dense_layerwise.json --top 3 --repeats 2 \
  --out out/mock_dense_tuned.json --results-dir out/tune
echo
for plan in seed_dense_layerwise seed_gpt_layerwise llama-3.1-70b_h200x8; do
  .venv/bin/python launch/plan.py --config "configs/${plan}.json" \
    --json "out/${plan}_plan.json" --plot "out/${plan}_plan.png"
  echo
done
echo "results in out/mock_*.results.json and out/mock_*_compare.png; tune in out/tune/ and"
echo "out/mock_dense_tuned.json; plans in out/*_plan.json and .png"
