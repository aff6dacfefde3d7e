#!/usr/bin/env bash
# The whole test suite on CPU, set-up included: lint, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check plugin launch benchmarks tests
.venv/bin/python -m pytest "$@"
