"""Run the layout a config's mode names (baseline: megatron-core TP x PP; layerwise: DeepSpeed
pipeline) and print measured beside predicted figures: see `--help`.

deepspeed --num_gpus N launch/infer.py --config FILE [--results OUT.json] [--verify] [--verbose]
torchrun --nproc_per_node N launch/infer.py --config FILE ...
"""

import sys
from pathlib import Path

try:
    from layerwise.cli.infer import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))
    from layerwise.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
