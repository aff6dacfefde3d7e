"""layerwise: cache-aware layer-wise placement for dense-model inference.

The planning half (config, specs, cost, partition, plan, report) is pure Python and imports no
torch; the runtimes that execute a plan live in `layerwise.runtime` and are imported on demand.
"""

__version__ = "0.1.0"
