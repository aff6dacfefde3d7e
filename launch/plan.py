"""Plan both layouts for a config and print predicted figures: see `--help`."""

import sys
from pathlib import Path

try:
    from layerwise.cli.plan import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))
    from layerwise.cli.plan import main

if __name__ == "__main__":
    sys.exit(main())
