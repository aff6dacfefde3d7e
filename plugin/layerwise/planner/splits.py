"""Block counts per pipeline stage that megatron-core builds (pure arithmetic, no config).

Even: num_layers / P blocks per stage, megatron's default. Uneven, from its TransformerConfig
keys num_layers_in_first_pipeline_stage = f and num_layers_in_last_pipeline_stage = l: every
middle stage then holds (num_layers - f - l) / (P - 2) blocks, which must divide evenly and be
>= 1 (for P = 2, f + l = num_layers); f, l >= 1.
"""

from itertools import accumulate

from layerwise.model.spec import ModelSpec

FIRST_KEY = "num_layers_in_first_pipeline_stage"
LAST_KEY = "num_layers_in_last_pipeline_stage"


def even_counts(num_layers: int, stages: int, pairs: bool) -> tuple[int, ...] | None:
    """num_layers / stages on every stage, if that divides (and is even when `pairs`)."""
    per_stage, left = divmod(num_layers, stages)
    if left or per_stage < 1 or (pairs and per_stage % 2):
        return None
    return (per_stage,) * stages


def uneven_counts(num_layers: int, stages: int, pairs: bool) -> list[tuple[int, ...]]:
    """Every (f, m, ..., m, l) megatron-core accepts; all counts even when `pairs` (dense
    layers pair up column- then row-parallel under TP, so a stage must hold whole pairs)."""
    step = 2 if pairs else 1
    if stages == 1:
        return [(num_layers,)] if num_layers % step == 0 else []
    middles = stages - 2
    found = []
    for middle in range(step, (num_layers - 2) // max(1, middles) + 1, step) if middles else [0]:
        rest = num_layers - middles * middle
        for first in range(step, rest, step):
            last = rest - first
            if last >= 1 and last % step == 0:
                found.append((first, *(middle,) * middles, last))
    return found


def has_split(num_layers: int, stages: int, pairs: bool) -> bool:
    """Whether megatron-core can split the blocks at all: >= 1 block per stage (>= 1 pair and
    whole pairs when `pairs`), since (f, 1, ..., 1, l) or its pair version then exists."""
    step = 2 if pairs else 1
    return num_layers % step == 0 and num_layers >= step * stages


def pipeline_boundaries(model: ModelSpec, counts: tuple[int, ...]) -> tuple[int, ...]:
    """Blocks per stage -> pipeline-layer boundaries: the embedding joins stage 0, the LM head
    the last stage."""
    offset = 1 if model.vocab_size else 0
    inner = [offset + total for total in accumulate(counts)][:-1]
    return (0, *inner, model.pipeline_layers)


def block_counts(model: ModelSpec, boundaries: tuple[int, ...]) -> tuple[int, ...]:
    """Pipeline-layer boundaries -> blocks per stage (the embedding and head not counted)."""
    offset = 1 if model.vocab_size else 0
    inner = [min(max(b - offset, 0), model.num_layers) for b in boundaries]
    return tuple(b - a for a, b in zip(inner, inner[1:]))


def megatron_keys(counts: tuple[int, ...]) -> dict[str, int]:
    """The TransformerConfig keys that build these counts: none for an even split."""
    if len(set(counts)) <= 1:
        return {}
    return {FIRST_KEY: counts[0], LAST_KEY: counts[-1]}
