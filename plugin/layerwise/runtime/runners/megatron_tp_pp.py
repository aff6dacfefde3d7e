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
from layerwise.planner.grid import Place
from layerwise.planner.layouts import Layout
from layerwise.runtime.distributed import megatron_groups
from layerwise.runtime.model import TORCH_DTYPES, PresetLayer, megatron_config, stage_cache
from layerwise.runtime.runners.base import run_decode


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


class MegatronTPxPP:
    """This rank's tensor shard of one pipeline stage of the baseline layout."""

    def __init__(self, config: RunConfig, layout: Layout, place: Place, device: torch.device):
        self.config, self.layout = config, layout
        grid = layout.grid
        self.groups = megatron_groups(
            grid.groups("model"), grid.groups("pipe"), config.run.timeout_s
        )
        self.first = place.stage == 0
        self.last = place.stage == len(layout.stages) - 1
        dtype = TORCH_DTYPES[config.run.dtype]
        stage = layout.stages[place.stage]
        self.cache = stage_cache(config, layout, device)
        layers = [
            PresetLayer(
                config.model, index, config.run.seed, dtype, device, self.groups, self.cache
            )
            for index in range(stage.first_layer, stage.stop_layer)
        ]
        self.module = StageModule(
            megatron_config(config.model, dtype, device.type == "cpu"), layers
        )
        self.p2p = P2PCommunicator(pp_group=self.groups.pp, config=self.module.config)
        self.schedule = get_forward_backward_func(pp_size=grid.dim("pipe"), vp_size=None)

    def prefill(self, chunks):
        if self.cache is not None:
            self.cache.start(0, self.layout.micro_batches)
        if self.config.model.kind == "dense":
            return self._run(chunks, self.layout.micro_batches, self.layout.chunk_tokens, 1)
        seq_len = self.config.workload.seq_len
        return self._run(chunks, self.layout.micro_batches, seq_len, self.layout.micro_batch_rows)

    def decode(self, steps):
        seq_len = self.config.workload.seq_len
        return run_decode(self._decode, steps, self.layout, seq_len, self.cache)

    def _decode(self, tokens, count: int):
        """`count` decode micro-batches: [1, rows, hidden] between stages ([rows, 1, hidden] for
        a dense model's [rows, hidden] tokens)."""
        sequences = self.config.workload.batch_size // self.layout.replicas
        rows = sequences // self.layout.decode_micro_batches
        if self.config.model.kind == "dense":
            return self._run(tokens, count, rows, 1)
        return self._run(tokens, count, 1, rows)

    def _run(self, inputs, count: int, seq_length: int, micro_batch_size: int):
        """One forward-only schedule over `count` micro-batches of [seq_length,
        micro_batch_size, hidden] between stages; a dense chunk [tokens, hidden] travels as
        [tokens, 1, hidden]."""
        dense = self.config.model.kind == "dense"
        feed = None
        if self.first:
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
        if not self.last:
            return None
        return [output.squeeze(1) if dense else output for output in outputs]
