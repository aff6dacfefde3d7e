"""DeepSpeed's private members, as DeepSpeed 0.19 defines them: every runtime use of one is here.

DeepSpeed has no public partition hook (a callable `partition_method` is refused) and its
pipeline engine keeps training state between `eval_batch` calls, so the runtime must reach past
its public API in these few places. setup.cfg pins deepspeed < 0.20 and tests/runtime/test_pipe.py
pins the contract, so an upgrade that changes one fails a test instead of misplacing layers.
"""

from deepspeed.pipe import PipelineModule


class PartitionHook(PipelineModule):
    """A PipelineModule whose layer placement goes through the public-named `place_layers`:
    DeepSpeed's `__init__` calls the private `_partition_layers(method)` before it builds this
    rank's layers; override `place_layers` to place them another way."""

    def _partition_layers(self, method: str = "uniform") -> None:
        self.place_layers(method)

    def place_layers(self, method: str) -> None:
        """DeepSpeed's own placement ('parameters', 'uniform', 'type:<regex>')."""
        super()._partition_layers(method)


def layer_specs(module: PipelineModule) -> list:
    """The layer list the module was given, before any layer is built."""
    return module._layer_specs


def set_stage_bounds(module: PipelineModule, parts: list[int]) -> None:
    """This rank's stage (from DeepSpeed's topology) builds layers [parts[stage],
    parts[stage + 1]) of the num_stages + 1 boundaries `parts`."""
    stage = module._topo.get_coord(module.global_rank).pipe
    module._set_bounds(start=parts[stage], stop=parts[stage + 1])


def reset_eval_state(engine) -> None:
    """Before every `eval_batch`: clear the loss the engine never resets, and the activation
    shapes it keeps from the last call (a changed shape, as decode's after prefill's, would
    otherwise give silently wrong outputs)."""
    engine.total_loss = None
    engine.reset_activation_shape()
