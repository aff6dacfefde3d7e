"""Measure this machine (a CUDA GPU, else the CPU) and write a hardware profile: see `--help`.

python launch/calibrate.py --config configs/mock_gpt_baseline.json \
    --out configs/hardware/cpu-mock.yaml
"""

import sys
from pathlib import Path

try:
    from layerwise.cli.calibrate import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))
    from layerwise.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
