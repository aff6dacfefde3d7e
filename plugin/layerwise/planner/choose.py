"""Choosing among priced layouts: those that fit HBM, the best chunking, the best for an objective.

Predicted figures within SAME_FIGURE (tolerances.py) of the best tie; a stated rule breaks
the tie, since predictions are not finer than that.
"""

from collections.abc import Callable, Sequence

from layerwise.config.sections import Objective
from layerwise.errors import CapacityError
from layerwise.hardware.spec import HardwareSpec
from layerwise.planner.records import Layout
from layerwise.planner.tolerances import SAME_FIGURE


def tps_cost(layout: Layout) -> float:
    """Prefill tokens/s as a cost (lower is better)."""
    return -layout.tps


def tpot_cost(layout: Layout) -> float:
    """Seconds per decode step (lower is better)."""
    return layout.tpot_s


def within_tie(layouts: Sequence[Layout], cost: Callable[[Layout], float]) -> list[Layout]:
    """The layouts whose cost (lower is better; negated for tokens/s) is within SAME_FIGURE of
    the best: cost <= best + |best| x SAME_FIGURE."""
    best = min(cost(lay) for lay in layouts)
    band = abs(best) * SAME_FIGURE
    return [lay for lay in layouts if cost(lay) <= best + band]


def best_of(gpu: HardwareSpec, layouts: list[Layout]) -> Layout:
    """The chunking with the highest tokens/s; near-ties (within SAME_FIGURE) go to a chunk
    whose tiles fit the L2 budget (only where the profile measured an L2 gain), then to the
    lower TPOT, then to the smaller chunk (less memory)."""
    close = within_tie(layouts, tps_cost)
    l2_priced = gpu.l2_gbs > 0
    return min(
        close,
        key=lambda lay: (l2_priced and not lay.chunk_fits_l2, lay.tpot_s, lay.chunk_tokens),
    )


def within_hbm(gpu: HardwareSpec, layouts: list[Layout]) -> list[Layout]:
    return [lay for lay in layouts if lay.memory_bytes_per_gpu <= gpu.usable_bytes]


def fitting(gpu: HardwareSpec, layouts: list[Layout], what: str) -> list[Layout]:
    """The layouts within HBM; CapacityError with the smallest need when none is."""
    found = within_hbm(gpu, layouts)
    if not found:
        smallest = min(lay.memory_bytes_per_gpu for lay in layouts)
        raise CapacityError(what, smallest, gpu.usable_bytes)
    return found


def fitting_split(gpu: HardwareSpec, layouts: list[Layout], field: str) -> list[Layout]:
    """The layouts of a forced split (config key `field`) within HBM; when none is,
    CapacityError naming the first stage over HBM in the chunking that needs the least."""
    found = within_hbm(gpu, layouts)
    if found:
        return found
    least = min(layouts, key=lambda lay: lay.memory_bytes_per_gpu)
    stage = next(st for st in least.stages if st.memory_bytes > gpu.usable_bytes)
    held = (
        f"pipeline layers {stage.first_layer}-{stage.stop_layer - 1}"
        if stage.num_layers
        else "no layers"
    )
    raise CapacityError(
        f"{field}: stage {stage.index} ({held}) does not fit HBM even at a chunk of "
        f"{least.chunk_tokens:,} tokens",
        stage.memory_bytes,
        gpu.usable_bytes,
    )


def best_for(objective: Objective, layouts: Sequence[Layout]) -> Layout:
    """The best layout for the objective: highest prefill tokens/s (throughput) or lowest TPOT
    (latency). Figures within SAME_FIGURE tie, broken by the other figure (also within
    SAME_FIGURE), then by the deepest pipeline, then by the order given."""
    first, second = (tps_cost, tpot_cost) if objective == "throughput" else (tpot_cost, tps_cost)
    close = within_tie(layouts, first)
    closer = within_tie(close, second)
    return max(closer, key=lambda lay: len(lay.stages))
