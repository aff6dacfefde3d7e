"""Run the baseline and the layer-wise layout of one model and print them side by side: see
`--help`.

python launch/compare.py --config configs/mock_gpt_baseline.json \
    --config configs/mock_gpt_layerwise.json [--verify] [--plot OUT.png]
"""

import sys
from pathlib import Path

try:
    from layerwise.cli.compare import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))
    from layerwise.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
