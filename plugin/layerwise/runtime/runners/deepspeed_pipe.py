"""The layer-wise layout: DeepSpeed's pipeline engine over whole megatron-core layers.

Each rank builds only its stage's layers (`LayerSpec`), placed by the plan's exact partition
through `LayerwisePipelineModule`; a replica's batch streams through `engine.eval_batch` chunk
by chunk. DeepSpeed's inference pitfalls (docs/sources.md) are handled here: `total_loss` reset
and activation shapes reset before every call (through compat.deepspeed_internals), `(input,
None)` items from the iterator, one tensor between stages, outputs only on each replica's last
stage.
"""

import deepspeed
import pydantic
import torch
from deepspeed.pipe import LayerSpec
from deepspeed.runtime.pipe.topology import ProcessTopology

from layerwise.config.sections import RunConfig
from layerwise.errors import ConfigError
from layerwise.planner.assignment import RankAssignment
from layerwise.planner.grid import RankGrid
from layerwise.planner.records import Layout
from layerwise.runtime.compat.deepspeed_config import deepspeed_keys
from layerwise.runtime.compat.deepspeed_internals import reset_eval_state
from layerwise.runtime.distributed import singleton_groups
from layerwise.runtime.logs import quiet_prints
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, stage_cache
from layerwise.runtime.pipe import LayerwisePipelineModule
from layerwise.runtime.runners.base import Phase, Runner


def process_topology(grid: RankGrid) -> ProcessTopology:
    """DeepSpeed's topology for the plan's grid: same axes, same row-major rank order."""
    return ProcessTopology(axes=list(grid.axes), dims=list(grid.dims))


def boundaries(layout: Layout) -> tuple[int, ...]:
    return (*(stage.first_layer for stage in layout.stages), layout.stages[-1].stop_layer)


def engine_config(config: RunConfig, layout: Layout) -> dict:
    """The user's `deepspeed` section with the plan's batch keys (checked to agree at planning)."""
    return {"steps_per_print": 10**9, **config.deepspeed, **deepspeed_keys(layout)}


def deepspeed_refusal(error: pydantic.ValidationError) -> str:
    """DeepSpeed's own check of the `deepspeed` section, one line per field it refused."""
    fields = "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}, got {item['input']!r}"
        for item in error.errors()
    )
    return f"deepspeed: DeepSpeed refuses it ({error.title}): {fields}"


class LayerwisePipeline(Runner):
    """This rank's stage of the layer-wise layout, run by DeepSpeed's PipelineEngine."""

    def __init__(
        self, config: RunConfig, layout: Layout, assignment: RankAssignment, device: torch.device
    ):
        super().__init__(assignment, stage_cache(config.model, assignment, device))
        self.device = device
        groups = singleton_groups(layout.grid.size, config.run.timeout_s)
        dtype = TORCH_DTYPES[assignment.dtype]
        model, seed = config.model, assignment.seed
        specs = [
            LayerSpec(PresetLayer, model, index, seed, dtype, device, groups, self.cache)
            for index in range(model.pipeline_layers)
        ]
        with quiet_prints():
            module = LayerwisePipelineModule(
                specs,
                topology=process_topology(layout.grid),
                boundaries=boundaries(layout),
                training=False,  # inference: a plan may leave a stage without layers
            )
            if module.stage_id != assignment.stage:
                raise RuntimeError(
                    f"DeepSpeed placed rank {module.global_rank} on stage {module.stage_id}, "
                    f"the plan on stage {assignment.stage}"
                )
            try:
                self.engine, *_ = deepspeed.initialize(
                    model=module, config=engine_config(config, layout)
                )
            except pydantic.ValidationError as error:
                raise ConfigError([deepspeed_refusal(error)], config.source) from None

    def run_micro_batches(self, inputs, count: int, phase: Phase):
        """One eval_batch of `count` micro-batches, prefill or decode alike (the engine reads
        shapes from the tensors); stages that read no input get placeholders (the last stage
        reads only the absent labels)."""
        items = inputs if inputs is not None else [torch.empty(0, device=self.device)] * count
        reset_eval_state(self.engine)
        return self.engine.eval_batch(
            iter([(item, None) for item in items]),
            compute_loss=False,
            reduce_output=None,
            num_micro_batches=count,
        )
