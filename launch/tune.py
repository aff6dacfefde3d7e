"""Run the best predicted layouts of a config, interleaved over rounds, and keep the one that
measures best: see `--help`.

python launch/tune.py --config configs/mock_dense_layerwise.json [--top 4] [--repeats 3] \
    [--runs 20] [--objective throughput|latency] [--out BEST.json] [--results-dir DIR]
"""

import sys
from pathlib import Path

try:
    from layerwise.cli.tune import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))
    from layerwise.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
