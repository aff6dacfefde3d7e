"""layerwise: cache-aware layer-wise placement for dense-model inference.

The flow, one folder a step: config -> model, hardware -> costmodel -> partition -> planner ->
report; runtime runs a plan, calibrate measures a machine into a profile, cli holds the commands.
Everything but runtime and calibrate imports no torch (tests/test_package.py checks whole
folders). The public API:

    config = load_config("configs/seed_gpt_layerwise.json")
    plan = make_plan(config)          # both layouts priced, the recommendation, PREDICTED figures
    print(render(plan))               # the tables `layerwise-plan` prints
    partition_costs([1, 1, 1, 4], 2)  # the exact partitioner on your own costs: (0, 3, 4)
"""

from layerwise.config.load import load_config, parse_config
from layerwise.config.sections import RunConfig
from layerwise.errors import CapacityError, ConfigError, ExitCode, LayerwiseError
from layerwise.partition.costs import partition_costs
from layerwise.partition.search import Link, PartitionInputError
from layerwise.planner.plan import make_plan
from layerwise.planner.records import Plan
from layerwise.report.plan_json import plan_dict
from layerwise.report.text import render

__version__ = "0.1.0"
__all__ = [
    "CapacityError",
    "ConfigError",
    "ExitCode",
    "LayerwiseError",
    "Link",
    "PartitionInputError",
    "Plan",
    "RunConfig",
    "load_config",
    "make_plan",
    "parse_config",
    "partition_costs",
    "plan_dict",
    "render",
]
