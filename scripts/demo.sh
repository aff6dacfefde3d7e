#!/usr/bin/env bash
# The main job on CPU, set-up included: plan both layouts for the seed configs (PREDICTED figures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
for model in seed_dense seed_gpt; do
  .venv/bin/python launch/plan.py --config "configs/${model}_layerwise.json" \
    --json "out/${model}_plan.json" --plot "out/${model}_plan.png"
  echo
done
echo "plans written to out/*_plan.json and timelines to out/*_plan.png"
