#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install layerwise with its test extras; idempotent.
# torch==2.13.0 goes in first: a bare torch requirement on a machine without torch pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "layerwise needs Python >= 3.11, found " + sys.version.split()[0])'
  "$python" -m venv .venv
fi
if ! .venv/bin/python -c 'import layerwise, torch, deepspeed, megatron.core, pytest, pytest_timeout, hypothesis, matplotlib' 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -c 'import torch' 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e '.[test]'
fi
