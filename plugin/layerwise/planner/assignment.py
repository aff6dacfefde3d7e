"""What one rank runs of a plan: its place, its layers, its share of the batch and its chunking.

The one place that turns a layout into per-rank numbers, so the runtime reads them instead of
re-deriving them. Pure Python: the planner and the torch-free CLIs can use it too.
"""

from dataclasses import dataclass

from layerwise.config.sections import RunConfig
from layerwise.planner.records import Layout


@dataclass(frozen=True, kw_only=True)
class RankAssignment:
    """One rank of a layout. A replica owns a contiguous block of `sequences` sequences from
    `first_sequence`; every stage of a replica sees the same chunking."""

    rank: int
    replica: int
    stage: int
    tensor_rank: int
    first_layer: int
    stop_layer: int
    """This stage holds pipeline layers [first_layer, stop_layer)."""
    is_first_stage: bool
    """Reads the replica's inputs."""
    is_last_stage: bool
    """Holds the replica's outputs."""
    sequences: int
    """Sequences per replica: the batch split evenly over the replicas."""
    first_sequence: int
    micro_batches: int
    """Prefill micro-batches (chunks) of the replica's batch."""
    micro_batch_rows: int
    chunk_tokens: int
    decode_micro_batches: int
    decode_rows: int
    """Sequences per decode micro-batch."""
    decode_streamed: bool
    """All decode steps run as one run of steps x decode micro-batches, else one run per step."""
    seq_len: int
    """Prompt length: where the first decode step writes in the KV cache."""
    decode_steps: int
    cache_length: int
    """KV-cache positions: the prompt plus every decode step."""
    dtype: str
    seed: int


def assign(config: RunConfig, layout: Layout, rank: int) -> RankAssignment:
    """`rank`'s assignment in `layout` (ValueError for a rank outside the layout's grid)."""
    place = layout.grid.place(rank)
    stage = layout.stages[place.stage]
    workload = config.workload
    sequences = workload.batch_size // layout.replicas
    return RankAssignment(
        rank=rank,
        replica=place.replica,
        stage=place.stage,
        tensor_rank=place.tensor,
        first_layer=stage.first_layer,
        stop_layer=stage.stop_layer,
        is_first_stage=place.stage == 0,
        is_last_stage=place.stage == len(layout.stages) - 1,
        sequences=sequences,
        first_sequence=place.replica * sequences,
        micro_batches=layout.micro_batches,
        micro_batch_rows=layout.micro_batch_rows,
        chunk_tokens=layout.chunk_tokens,
        decode_micro_batches=layout.decode_micro_batches,
        decode_rows=sequences // layout.decode_micro_batches,
        decode_streamed=layout.decode_streamed,
        seq_len=workload.seq_len,
        decode_steps=workload.decode_steps,
        cache_length=workload.seq_len + workload.decode_steps,
        dtype=config.run.dtype,
        seed=config.run.seed,
    )


def output_rank(layout: Layout, replica: int = 0) -> int:
    """Where a replica's outputs appear: its last stage, tensor rank 0."""
    return layout.grid.rank(data=replica, pipe=len(layout.stages) - 1, model=0)
