"""What the pricing and the layout searches read of a run, taken from its config once.

make_plan builds PlanInputs from the RunConfig and hands it down, so the pricing sees only the
model, the GPU, the workload and the few numbers derived from the config (bytes per element,
the L2 budget, the GPU count), not the whole config. Each layout's own search options
(BaselineOptions, LayerwiseOptions) are passed to that layout's search beside it.
"""

from dataclasses import dataclass

from layerwise.config.sections import RunConfig, Workload
from layerwise.costmodel.precision import Storage, storage_of
from layerwise.hardware.spec import HardwareSpec
from layerwise.model.spec import DTYPE_BYTES, ModelSpec


@dataclass(frozen=True, kw_only=True)
class PlanInputs:
    """The model, GPU and workload a layout is priced for, and the config's numbers derived once."""

    model: ModelSpec
    gpu: HardwareSpec
    """The hardware profile as loaded, with any gpus_per_node override applied."""
    workload: Workload
    gpus: int
    """GPUs in the run (hardware.gpus)."""
    dtype_bytes: int
    """Bytes per activation element of the run's dtype (and per weight and KV-cache element
    unless `storage` says otherwise)."""
    storage: Storage
    """Bytes per weight and KV-cache element (run.weights_dtype, run.kv_dtype) and the GEMM
    rate they give."""
    l2_budget_bytes: float
    """Bytes of L2 that activation tiles and resident weights may use: l2_budget_fraction x L2."""


def plan_inputs(config: RunConfig) -> PlanInputs:
    """What pricing reads of `config`, taken once so the pricing is handed no whole config."""
    return PlanInputs(
        model=config.model,
        gpu=config.gpu,
        workload=config.workload,
        gpus=config.hardware.gpus,
        dtype_bytes=DTYPE_BYTES[config.run.dtype],
        storage=storage_of(
            config.gpu, config.run.dtype, config.run.weights_dtype, config.run.kv_dtype
        ),
        l2_budget_bytes=config.layerwise.l2_budget_fraction * config.gpu.l2_bytes,
    )
