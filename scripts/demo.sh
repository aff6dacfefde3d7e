#!/usr/bin/env bash
# The main job on CPU, set-up included: the layer-wise runtime on 4 CPU ranks (DeepSpeed
# pipeline, gloo, CPU mock mode) with --verify for both mock models, then the planner's
# PREDICTED figures for the seed workload on 16 H100s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore
for model in mock_dense mock_gpt; do
  .venv/bin/deepspeed --num_gpus 4 launch/infer.py --config "configs/${model}_layerwise.json" \
    --verify --results "out/${model}_results.json" 2>/dev/null | grep -v '^\[20'
  echo
done
for model in seed_dense seed_gpt; do
  .venv/bin/python launch/plan.py --config "configs/${model}_layerwise.json" \
    --json "out/${model}_plan.json" --plot "out/${model}_plan.png"
  echo
done
echo "results in out/mock_*_results.json; plans in out/seed_*_plan.json and out/seed_*_plan.png"
