"""Megatron's TP x PP layout: an even split of blocks, or megatron-core's uneven first/last one.

When P divides num_layers, every stage holds num_layers / P blocks (megatron's default).
Otherwise the split is num_layers_in_first_pipeline_stage = f, num_layers_in_last_pipeline_stage
= l and m = (num_layers - f - l) / (P - 2) blocks on every middle stage (splits.py); the (f, l)
with the smallest predicted slowest prefill stage wins among those that fit memory (the
embedding counted on stage 0, the LM head on the last), ties (stage times within EQUAL_TIMES)
going to the split nearest the even one. For each m the first stage's time grows with f and
the last stage's shrinks, so the best f is where they cross, found by bisection:
O(L / (P - 2) x log L) splits priced, not all. A forced split (baseline.stage_layers) replaces
the search: it is priced as given at every chunk size.
"""

from layerwise.config.sections import BaselineOptions
from layerwise.model.spec import ModelSpec
from layerwise.partition.search import PartitionProblem
from layerwise.planner.choose import best_of, fitting
from layerwise.planner.grid import megatron_grid
from layerwise.planner.inputs import PlanInputs
from layerwise.planner.pricing import price, price_split
from layerwise.planner.records import Layout
from layerwise.planner.setting import Setting, chunk_candidates, prefix, problem
from layerwise.planner.splits import even_counts, pipeline_boundaries
from layerwise.planner.tolerances import EQUAL_TIMES


def baseline_setting(inputs: PlanInputs, options: BaselineOptions) -> Setting:
    """Megatron's rank order: TP groups of consecutive ranks, then pipeline stages."""
    tp, pp = options.tensor_parallel, options.pipeline_parallel
    return Setting(
        mode="baseline",
        tp=tp,
        replicas=1,
        grid=megatron_grid(tp, pp),
        sequences=inputs.workload.batch_size,
        decode_micro_batches=options.decode_micro_batches,
    )


def _first_true(low: int, high: int, test) -> int:
    """The smallest k in [low, high] with test(k), for a test false then true; high + 1 if none."""
    while low <= high:
        middle = (low + high) // 2
        if test(middle):
            high = middle - 1
        else:
            low = middle + 1
    return low


class _Splits:
    """Stage times and fits of megatron splits of one chunk's problem, from prefix sums."""

    def __init__(self, placed: PartitionProblem, first_block: int, num_layers: int):
        self.placed, self.first_block, self.num_layers = placed, first_block, num_layers
        self.costs = prefix(placed.layer_costs)
        self.resident = prefix(placed.resident_bytes)

    def bounds(self, first: int, middle: int) -> tuple[int, ...]:
        """Pipeline-layer boundaries of f = first blocks on stage 0, `middle` on the others but
        the last, the rest on the last."""
        stages, start = self.placed.num_stages, self.first_block + first
        inner = [start + j * middle for j in range(stages - 1)]
        return (0, *inner, len(self.placed.layer_costs))

    def times(self, bounds: tuple[int, ...]) -> list[float]:
        """hop in + layers + hop out per stage."""
        sizes, hops, last = (
            self.placed.boundary_bytes,
            self.placed.links,
            self.placed.num_stages - 1,
        )
        return [
            (hops[s - 1].time(sizes[a]) if s else 0.0)
            + self.costs[b]
            - self.costs[a]
            + (hops[s].time(sizes[b]) if s < last else 0.0)
            for s, (a, b) in enumerate(zip(bounds, bounds[1:]))
        ]

    def fits(self, bounds: tuple[int, ...], stages: range) -> bool:
        rooms, resident = self.placed.capacity_bytes, self.resident
        return all(resident[bounds[s + 1]] - resident[bounds[s]] <= rooms[s] for s in stages)


def _uneven_candidates(splits: _Splits, step: int, memory: bool) -> list[tuple[int, int]]:
    """(f, m) per middle count m: where stage 0's time meets the last stage's, within memory."""
    stages, blocks = splits.placed.num_stages, splits.num_layers
    middles = stages - 2
    last = range(stages - 1, stages)
    found = []
    for middle in range(step, (blocks - 2) // middles + 1, step) if middles else [0]:
        rest = blocks - middles * middle
        if rest < 2 * step or rest % step:
            continue
        top = rest // step - 1  # f = step x k for k in [1, top]
        low, high = 1, top
        if memory:
            if not splits.fits(splits.bounds(step, middle), range(1, stages - 1)):
                continue
            high = (
                _first_true(
                    1,
                    top,
                    lambda k, m=middle: not splits.fits(splits.bounds(step * k, m), range(1)),
                )
                - 1
            )
            low = _first_true(
                1, top, lambda k, m=middle: splits.fits(splits.bounds(step * k, m), last)
            )
        if low > high:
            continue

        def first_wins(k: int, m: int = middle) -> bool:
            times = splits.times(splits.bounds(step * k, m))
            return times[0] >= times[-1]

        cross = _first_true(low, high, first_wins)
        found += [(step * k, middle) for k in {max(low, cross - 1), min(high, cross)}]
    return found


def _nearest_even(splits: _Splits, options, step: int, limit: float, memory: bool):
    """Per (f, m) option, the f' within `limit` and memory nearest an even split (both the
    first and last stage's times are monotone in f', so the allowed f' form an interval)."""
    stages, blocks = splits.placed.num_stages, splits.num_layers
    even = blocks / stages
    chosen = []
    for first, middle in options:
        rest = blocks - (stages - 2) * middle

        def first_ok(k: int, m: int = middle) -> bool:
            bounds = splits.bounds(step * k, m)
            return splits.times(bounds)[0] <= limit and (
                not memory or splits.fits(bounds, range(1))
            )

        def last_ok(k: int, m: int = middle) -> bool:
            bounds = splits.bounds(step * k, m)
            in_memory = not memory or splits.fits(bounds, range(stages - 1, stages))
            return splits.times(bounds)[-1] <= limit and in_memory

        known = first // step
        low = _first_true(1, known, last_ok)
        high = _first_true(known, rest // step - 1, lambda k: not first_ok(k)) - 1
        half = rest / 2 / step
        for k in {min(max(int(half), low), high), min(max(int(half) + 1, low), high), known}:
            bounds = splits.bounds(step * k, middle)
            if max(splits.times(bounds)) > limit or (
                memory and not splits.fits(bounds, range(stages))
            ):
                continue
            f = step * k
            distance = abs(f - even) + abs(rest - f - even) + (stages - 2) * abs(middle - even)
            chosen.append((distance, bounds))
    return min(chosen)[1]


def baseline_boundaries(
    model: ModelSpec, tensor_parallel: int, placed: PartitionProblem
) -> tuple[int, ...]:
    """Pipeline-layer boundaries of the megatron split: even when P divides the blocks, else
    the uneven split with the smallest slowest stage among those that fit memory (all of them
    if none fits), nearest to even on a tie. Dense blocks under TP (tensor_parallel > 1) split
    in pairs."""
    stages = placed.num_stages
    pairs = model.kind == "dense" and tensor_parallel > 1
    even = even_counts(model.num_layers, stages, pairs)
    if even:
        return pipeline_boundaries(model, even)
    splits = _Splits(placed, 1 if model.vocab_size else 0, model.num_layers)
    step = 2 if pairs else 1
    memory = True
    options = _uneven_candidates(splits, step, memory)
    if not options:
        memory = False
        options = _uneven_candidates(splits, step, memory)
    if not options:
        raise ValueError(f"no megatron split of {model.num_layers} blocks on {stages} stages")
    slowest = {option: max(splits.times(splits.bounds(*option))) for option in options}
    best = min(slowest.values())
    limit = best * (1 + EQUAL_TIMES)
    close = [option for option in options if slowest[option] <= limit]
    return _nearest_even(splits, close, step, limit, memory)


def plan_baseline(inputs: PlanInputs, options: BaselineOptions) -> Layout:
    """Megatron's split for each chunk size, or baseline.stage_layers as given (blocks per
    stage, the embedding on stage 0 and the LM head on the last; pricing.price_split); raises
    CapacityError if none fits."""
    setting = baseline_setting(inputs, options)
    if options.stage_layers is not None:
        boundaries = pipeline_boundaries(inputs.model, options.stage_layers)
        return price_split(
            inputs,
            setting,
            options.micro_batches,
            boundaries,
            "baseline.stage_layers",
            options.stage_layers,
        )
    model = inputs.model
    layouts = []
    for chunk in chunk_candidates(inputs, setting, options.micro_batches):
        boundaries = baseline_boundaries(model, setting.tp, problem(inputs, setting, chunk))
        layouts.append(price(inputs, setting, chunk, boundaries))
    what = f"TP={setting.tp} x PP={setting.num_stages} of {model.num_layers} blocks"
    if model.vocab_size:
        what += " + embedding + LM head"
    return best_of(inputs.gpu, fitting(inputs.gpu, layouts, what))
