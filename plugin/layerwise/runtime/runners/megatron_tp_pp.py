"""The baseline layout: Megatron's tensor x pipeline parallelism, with megatron-core's own parts.

Process groups from the plan's grid (Megatron's default rank order) in a `ProcessGroupCollection`
passed to every module, so no megatron global state is set; layers are megatron-core's
column/row-parallel linears (dense: one all-reduce per layer pair) or TransformerLayers at TP > 1
(two all-reduces each); the pipeline is megatron-core's forward-only schedule from
`get_forward_backward_func()` with the plan's micro-batches, and its `P2PCommunicator`.
"""

import torch
from megatron.core.enums import ModelType
from megatron.core.pipeline_parallel.p2p_communication import P2PCommunicator
from megatron.core.pipeline_parallel.schedules import get_forward_backward_func
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.module import MegatronModule
from torch import nn

from layerwise.config.sections import RunConfig
from layerwise.planner.assignment import RankAssignment
from layerwise.planner.records import Layout
from layerwise.runtime.distributed import megatron_groups
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, megatron_config, stage_cache
from layerwise.runtime.runners.base import Phase, Runner


class StageModule(MegatronModule):
    """This rank's layers of one pipeline stage. megatron's schedule feeds the first stage from
    the data iterator and every other stage through `set_input_tensor`."""

    def __init__(self, config: TransformerConfig, layers: list[nn.Module]):
        super().__init__(config=config)
        self.model_type = ModelType.encoder_or_decoder
        self.layers = nn.ModuleList(layers)
        self.input_tensor: torch.Tensor | None = None

    def set_input_tensor(self, tensors: list[torch.Tensor | None]) -> None:
        self.input_tensor = tensors[0]

    def forward(self, hidden: torch.Tensor | None) -> torch.Tensor:
        hidden = self.input_tensor if hidden is None else hidden
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


def forward_step(data_iterator, model: StageModule):
    """megatron's forward_step_func: no loss function, so the schedule returns raw outputs."""
    hidden = next(data_iterator) if data_iterator is not None else None
    return model(hidden), None


class MegatronTPxPP(Runner):
    """This rank's tensor shard of one pipeline stage of the baseline layout."""

    def __init__(
        self, config: RunConfig, layout: Layout, assignment: RankAssignment, device: torch.device
    ):
        super().__init__(assignment, stage_cache(config.model, assignment, device))
        self.model = config.model
        grid = layout.grid
        self.groups = megatron_groups(
            grid.groups("model"), grid.groups("pipe"), config.run.timeout_s
        )
        dtype = TORCH_DTYPES[assignment.dtype]
        layers = [
            PresetLayer(self.model, index, assignment.seed, dtype, device, self.groups, self.cache)
            for index in range(assignment.first_layer, assignment.stop_layer)
        ]
        self.module = StageModule(
            megatron_config(config.model, dtype, device.type == "cpu"), layers
        )
        self.p2p = P2PCommunicator(pp_group=self.groups.pp, config=self.module.config)
        self.schedule = get_forward_backward_func(pp_size=grid.dim("pipe"), vp_size=None)

    def run_micro_batches(self, inputs, count: int, phase: Phase):
        """Between stages: a prefill chunk is [seq, rows, hidden] ([chunk tokens, 1, hidden]
        for a dense model), a decode micro-batch [1, rows, hidden] ([rows, 1, hidden] dense)."""
        dense, share = self.model.kind == "dense", self.assignment
        if phase == "prefill":
            if dense:
                return self._run(inputs, count, share.chunk_tokens, 1)
            return self._run(inputs, count, share.seq_len, share.micro_batch_rows)
        if dense:
            return self._run(inputs, count, share.decode_rows, 1)
        return self._run(inputs, count, 1, share.decode_rows)

    def _run(self, inputs, count: int, seq_length: int, micro_batch_size: int):
        """One forward-only schedule over `count` micro-batches of [seq_length,
        micro_batch_size, hidden] between stages; a dense chunk [tokens, hidden] travels as
        [tokens, 1, hidden]."""
        dense = self.model.kind == "dense"
        feed = None
        if self.assignment.is_first_stage:
            feed = iter([chunk.unsqueeze(1) if dense else chunk for chunk in inputs])
        with torch.no_grad():
            outputs = self.schedule(
                forward_step_func=forward_step,
                data_iterator=feed,
                model=[self.module],
                num_microbatches=count,
                seq_length=seq_length,
                micro_batch_size=micro_batch_size,
                forward_only=True,
                p2p_communicator=self.p2p,
                pg_collection=self.groups,
            )
        if not self.assignment.is_last_stage:
            return None
        return [output.squeeze(1) if dense else output for output in outputs]
