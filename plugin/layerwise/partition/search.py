"""Exact min-bottleneck contiguous partition of a chain of layers onto pipeline stages.

Stage s holding layers [a, b) costs in_s(x_a) + sum(layer_costs[a:b]) + out_s(x_b), where x_i is
the activation size entering layer i (x_L leaves the last layer), in_s the receive over the link
from stage s-1 (none for s = 0), out_s the send to stage s+1 (none for the last stage); an empty
stage (a == b) still receives and forwards its input. Stage s may hold at most capacity_bytes[s]
of resident bytes (weights, KV cache). The partitioner minimises the most expensive stage, which
bounds the steady-state period of an inference pipeline.

Search: bisection on the bottleneck T with an O(stages) probe, then a check that no partition is
cheaper by a relative 1e-9; a failed probe returns the smallest T at which one of its comparisons
would flip, so the search lands exactly on the optimum when stage costs take few values. The
probe keeps, per stage, the reachable cuts no other reachable cut dominates: p > q dominates q
when every completion from q becomes one from p by leaving stages empty at p and starting the
crossing stage at p instead, which holds when x_p <= every x in [q, p) and, if empty stages at p
fit T, when the layers in [q, p) pay for p's larger hops. Equal sizes leave one cut per stage
(the classic greedy), and so, mostly, do token ids in and logits out; a stage's furthest end is
one bisection on the prefix costs per run of equal sizes.

Ties: among partitions with the optimal bottleneck, the smallest sum of stage times (one chunk's
trip through the pipeline; it varies only by the hops, each paid by two stages), then the
smallest sum of squared stage times (the most even spread of that sum), then of squared compute
times (layers spread out rather than an empty stage between two). Layer costs and hops are
rounded to a grid of T / 2**40 and summed as integers, so equal sums tie exactly. A DP over the
band of cuts a partition within T can use (between the furthest reach forwards and backwards)
finds it; past TIE_WORK_LIMIT stage evaluations (a band as wide as the model) the search's own
partition is kept.
"""

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from numbers import Real

from layerwise.errors import CapacityError
from layerwise.partition import ties

RELATIVE_TOLERANCE = 1e-9  # optimality is checked to this
BISECTION_TOLERANCE = 1e-6  # bisection stops here, then the check above runs
GIB = 2**30


class PartitionInputError(ValueError):
    """A PartitionProblem field with a wrong length or a value that is not a usable number."""


@dataclass(frozen=True)
class Link:
    """A stage-to-stage link: time = latency_s + bytes / bytes_per_s."""

    latency_s: float
    bytes_per_s: float

    def time(self, num_bytes: float) -> float:
        return self.latency_s + num_bytes / self.bytes_per_s


@dataclass(frozen=True)
class PartitionProblem:
    """Per-layer costs (seconds for one chunk) and sizes; links[j] joins stage j and j+1.

    Every number must be finite and >= 0 (bytes_per_s > 0; a capacity may be inf: no limit);
    PartitionInputError names the first that is not.
    """

    layer_costs: tuple[float, ...]
    boundary_bytes: tuple[float, ...]
    resident_bytes: tuple[float, ...]
    links: tuple[Link, ...]
    capacity_bytes: tuple[float, ...]

    def __post_init__(self):
        layers, stages = len(self.layer_costs), len(self.capacity_bytes)
        if stages < 1:
            raise PartitionInputError("capacity_bytes is empty: need at least one stage")
        for name, needed, what in (
            ("boundary_bytes", layers + 1, f"{layers} layers need {layers + 1} (both ends)"),
            ("resident_bytes", layers, f"{layers} layers need {layers}"),
            ("links", stages - 1, f"{stages} stages need {stages - 1}"),
        ):
            if len(getattr(self, name)) != needed:
                raise PartitionInputError(f"{name} has {len(getattr(self, name))} entries: {what}")
        for name in ("layer_costs", "boundary_bytes", "resident_bytes", "capacity_bytes"):
            _check_numbers(name, getattr(self, name), unlimited=name == "capacity_bytes")
        for j, link in enumerate(self.links):
            _check_numbers(f"links[{j}].latency_s", [link.latency_s], indexed=False)
            _check_numbers(
                f"links[{j}].bytes_per_s", [link.bytes_per_s], positive=True, indexed=False
            )

    @property
    def num_layers(self) -> int:
        return len(self.layer_costs)

    @property
    def num_stages(self) -> int:
        return len(self.capacity_bytes)


@dataclass(frozen=True)
class Partition:
    """boundaries[s]..boundaries[s+1] are the layers of stage s."""

    boundaries: tuple[int, ...]
    stage_costs: tuple[float, ...]

    @property
    def bottleneck(self) -> float:
        return max(self.stage_costs)


def _check_numbers(name: str, values: Sequence, unlimited=False, positive=False, indexed=True):
    """Every value finite (or +inf if `unlimited`) and >= 0 (> 0 if `positive`), else
    PartitionInputError naming the first that is not; one C-level sum settles the usual case."""
    try:
        total, least = sum(values), min(values, default=1.0)
        if (math.isfinite(total) or unlimited and total == math.inf) and least >= 0:
            if least > 0 or not positive:
                return
    except TypeError:  # not numbers
        total = None
    sign = ">" if positive else ">="
    bound = "a number >= 0 or inf" if unlimited else f"a finite number {sign} 0"
    for i, value in enumerate(values):
        fine = isinstance(value, Real) and (value > 0 if positive else value >= 0)
        if not (fine and (unlimited or value < math.inf)):
            raise PartitionInputError(f"{name}{f'[{i}]' * indexed} = {value!r}: must be {bound}")
    raise PartitionInputError(f"{name} adds up to {total!r}: too large to add up")


class _Chain:
    """Prefix sums, hops, runs of equal boundary sizes and dominance blockers of one problem."""

    def __init__(self, problem: PartitionProblem):
        self.problem = problem
        self.layers, self.stages = problem.num_layers, problem.num_stages
        self.capacity = problem.capacity_bytes
        self.cost = [0.0, *accumulate(problem.layer_costs)]
        self.resident = [0.0, *accumulate(problem.resident_bytes)]
        size = self.size = list(problem.boundary_bytes)
        self.smallest = min(size)
        self.latency = [link.latency_s for link in problem.links] + [0.0]  # none out of the last
        self.speed = [link.bytes_per_s for link in problem.links] + [math.inf]
        self.per_byte = [1 / speed for speed in self.speed]
        self.run_start = list(
            accumulate(range(len(size)), lambda r, i: r if size[i] == size[r] else i)
        )
        slowest, lag = max(self.per_byte), max(self.latency)
        # p dominates the cuts in (narrow[p], p) always, those in (wide[p], p) when empty
        # stages at p fit the limit (their hops are at most empty_bound[p]).
        self.narrow = _previous_smaller(size)
        above = _previous_smaller([x * slowest - c for c, x in zip(self.cost, size)])
        self.wide = [min(a, b) for a, b in zip(self.narrow, above)]
        self.empty_bound = [2 * (lag + x * slowest) for x in size]

    def slack(self, limit: float) -> float:
        """A margin above `limit` that covers the probe's and bisections' rounding."""
        return RELATIVE_TOLERANCE * limit + 1e-12 * self.cost[-1]

    def hop(self, link: int, position: int) -> float:
        """Link.time() of the bytes at `position` (link -1, before stage 0, and the last: 0)."""
        return self.latency[link] + self.size[position] / self.speed[link] if link >= 0 else 0.0

    def stage_times(self, bounds: Sequence[int]) -> tuple[float, ...]:
        """As stage_costs(), on the prefix sums already built."""
        cost, hop = self.cost, self.hop
        pairs = enumerate(zip(bounds, bounds[1:]))
        return tuple((hop(s - 1, a) + (cost[b] - cost[a])) + hop(s, b) for s, (a, b) in pairs)

    def probe(self, limit: float) -> tuple[tuple[int, ...] | None, float, list[int]]:
        """(A partition with every stage within `limit` or None, when None a limit up to which
        the answer stays None (the smallest at which a comparison made would flip), the
        furthest cut reached after each stage)."""
        event, front, steps, furthest = math.inf, [0], [], [0]
        for s in range(self.stages - 1):
            ends, step_event = self._step(s, front, limit)
            if step_event < event:
                event = step_event
            if not ends:
                return None, event, furthest
            steps.append(ends)
            front = [end for end, _ in reversed(ends)] if len(ends) > 1 else [ends[0][0]]
            furthest.append(ends[0][0])
        start, last_event = self._last_start(front, limit)
        if start < 0:
            return None, min(event, last_event), furthest
        bounds = [self.layers, start]
        for ends in reversed(steps):
            end = bounds[-1]
            bounds.append(ends[0][1] if len(ends) == 1 else next(a for e, a in ends if e == end))
        return tuple(reversed(bounds)), event, [*furthest, self.layers]

    def _step(self, s: int, front: list[int], limit: float) -> tuple[list[tuple[int, int]], float]:
        """The undominated (end, start) pairs of stage s from the cuts `front`, furthest first:
        the furthest end, then the furthest at or before its blocker, and so on."""
        cost, size, resident, layers = self.cost, self.size, self.resident, self.layers
        room, per_byte = self.capacity[s], self.per_byte[s]
        budget = limit - self.latency[s] - (self.latency[s - 1] if s else 0.0)
        in_per_byte = self.per_byte[s - 1] if s else 0.0
        ends, event, found, bound = [], math.inf, {}, layers
        while bound >= 0:
            best = start = -1
            for a in front:
                if a > bound:
                    break
                end = found.get(a, layers + 1)
                if end > bound:
                    top = bound
                    if resident[top] - resident[a] > room:
                        top = bisect_right(resident, resident[a] + room, a, top + 1) - 1
                    target = budget + cost[a] - size[a] * in_per_byte
                    end, gap = self._furthest(per_byte, target, a, top)
                    if limit + gap < event:
                        event = limit + gap
                    found[a] = end
                if end > best:
                    best, start = end, a
            if best < 0:
                break
            ends.append((best, start))
            if self.empty_bound[best] <= limit:
                bound = self.wide[best]
            else:
                bound = self.narrow[best]
                if self.empty_bound[best] < event:
                    event = self.empty_bound[best]
        return ends, event

    def _furthest(self, per_byte: float, target: float, first: int, top: int) -> tuple[int, float]:
        """(The last e in [first, top] with cost[e] + size[e] * per_byte <= target or -1, a lower
        bound of the excess over target of every e after it up to top): one bisection per run of
        equal sizes, walking runs leftwards from the reach of the smallest size."""
        cost, size, smallest = self.cost, self.size, self.smallest
        end = bisect_right(cost, target - smallest * per_byte, first, top + 1) - 1
        gap = cost[end + 1] + smallest * per_byte - target if end < top else math.inf
        while end >= first:
            bytes_here = size[end]
            if bytes_here == smallest:
                return end, gap
            run = self.run_start[end]
            run = run if run > first else first
            fits = bisect_right(cost, target - bytes_here * per_byte, run, end + 1) - 1
            if fits < end and cost[fits + 1] + bytes_here * per_byte - target < gap:
                gap = cost[fits + 1] + bytes_here * per_byte - target
            if fits >= run:
                return fits, gap
            end = run - 1
        return -1, gap

    def _last_start(self, front: list[int], limit: float) -> tuple[int, float]:
        """The furthest cut in `front` from which the last stage holds the rest within limit."""
        s, layers, event = self.stages - 1, self.layers, math.inf
        for a in reversed(front):
            if self.resident[layers] - self.resident[a] <= self.capacity[s]:
                time = self.hop(s - 1, a) + (self.cost[layers] - self.cost[a])
                if time <= limit:
                    return a, event
                event = min(event, time)
        return -1, event


def _previous_smaller(values: list[float]) -> list[int]:
    """found[i] = the largest j < i with values[j] < values[i], else -1 (a monotone stack)."""
    found, stack = [], []
    for i, value in enumerate(values):
        while stack and values[stack[-1]] >= value:
            stack.pop()
        found.append(stack[-1] if stack else -1)
        stack.append(i)
    return found


def _search(chain: _Chain) -> tuple[tuple[int, ...], float]:
    """(A partition with the smallest bottleneck to RELATIVE_TOLERANCE, its bottleneck).

    Invariant: the optimum lies in [low, high] and `best` achieves high. A probe that succeeds
    lowers high to what it achieved; one that fails raises low to its next event."""
    best, _, _ = chain.probe(math.inf)
    if best is None:
        raise _capacity_error(chain.problem)
    high = first_high = max(chain.stage_times(best))
    # No stage is cheaper than its costliest layer, nor than the mean of the total: the
    # layers' costs and each link's cheapest hop, paid by both stages it joins.
    hops = sum(lat + chain.smallest * k for lat, k in zip(chain.latency, chain.per_byte))
    low = max(
        max(chain.problem.layer_costs, default=0.0), (chain.cost[-1] + 2 * hops) / chain.stages
    )
    while high > low:
        final = high - low <= BISECTION_TOLERANCE * high
        if final:
            limit = high * (1 - RELATIVE_TOLERANCE)
        elif high > 4 * low > 0:  # the first: a lower bound is rarely off by 2x
            limit = 2 * low if high == first_high else math.sqrt(low * high)
        else:
            limit = (low + high) / 2
        if not low < limit < high:  # no float left in between: low or high is the optimum
            limit, final = low, True
        found, event, _ = chain.probe(limit)
        cost = high if found is None else max(chain.stage_times(found))
        if cost < high:
            best, high = found, cost
        else:  # infeasible (or no better, by rounding): search above
            low = max(low, limit, event if found is None else limit)
            if final:
                break
    return best, high


def _band(chain: _Chain, limit: float) -> tuple[list[int], list[int]] | None:
    """(lo, hi): every partition within `limit` has lo[s] <= boundaries[s] <= hi[s]; hi is the
    forward probe's furthest reach, lo the same on the mirrored chain (a dominated cut is never
    beyond the cut that dominates it). None if a probe disagrees with stage_costs by rounding."""
    loose = limit + chain.slack(limit)
    ahead, _, hi = chain.probe(loose)
    problem = chain.problem
    mirrored = PartitionProblem(
        *(tuple(reversed(getattr(problem, name))) for name in problem.__dataclass_fields__)
    )
    behind, _, far = _Chain(mirrored).probe(loose)
    if ahead is None or behind is None:
        return None
    return [chain.layers - far[chain.stages - s] for s in range(chain.stages + 1)], hi


def partition(problem: PartitionProblem) -> Partition:
    """The contiguous partition with the smallest bottleneck (to a relative 1e-9) within
    capacity; ties go to the smallest sum of stage times, then the most even (module doc).

    Raises CapacityError when no placement fits the per-stage capacities at any cost.
    """
    chain = _Chain(problem)
    best, bottleneck = _search(chain)
    band = _band(chain, bottleneck) if math.isfinite(bottleneck) else None  # hops overflowed
    tied = ties.tie_break(chain, bottleneck, *band) if band is not None else None
    bounds = tied or best
    return Partition(bounds, chain.stage_times(bounds))


def stage_costs(problem: PartitionProblem, boundaries: tuple[int, ...]) -> tuple[float, ...]:
    """Cost of every stage of a given partition (e.g. one of DeepSpeed's, for comparison)."""
    cost, links, x = [0.0, *accumulate(problem.layer_costs)], problem.links, problem.boundary_bytes
    hop = [lambda _: 0.0, *(link.time for link in links), lambda _: 0.0]  # none in 0, out of last
    pairs = enumerate(zip(boundaries, boundaries[1:]))
    return tuple((hop[s](x[a]) + (cost[b] - cost[a])) + hop[s + 1](x[b]) for s, (a, b) in pairs)


def fits_capacity(problem: PartitionProblem, boundaries: tuple[int, ...]) -> bool:
    resident = [0.0, *accumulate(problem.resident_bytes)]
    return all(
        resident[b] - resident[a] <= room
        for (a, b), room in zip(zip(boundaries, boundaries[1:]), problem.capacity_bytes)
    )


def uniform_boundaries(num_layers: int, num_stages: int) -> tuple[int, ...]:
    """Equal layer counts, the remainder on the first stages (DeepSpeed's 'uniform' counts)."""
    base, extra = divmod(num_layers, num_stages)
    sizes = [base + (1 if s < extra else 0) for s in range(num_stages)]
    return (0, *accumulate(sizes))


def _capacity_error(problem: PartitionProblem) -> CapacityError:
    """Names the layers that cannot share a stage: the stages filled in order, each with as
    many layers as fit (this fits whenever any placement does), up to the layer left over."""
    sizes, rooms, layers = problem.resident_bytes, problem.capacity_bytes, problem.num_layers
    resident, held, start = [0.0, *accumulate(sizes)], [], 0

    def holds(a: int, b: int) -> str:
        which = f"layer {a}" if b == a + 1 else f"layers {a}-{b - 1}"
        return f"{which} ({_gib(resident[b] - resident[a])})" if b > a else "nothing"

    for room in rooms:
        stop = bisect_right(resident, resident[start] + room, start, layers + 1) - 1
        held.append((start, stop))
        start = stop
    if start == layers:  # the probe and this packing disagree by rounding
        return CapacityError(f"{holds(0, layers)} do not fit {len(rooms)} stages", 0, 0)
    if sizes[start] > max(rooms):
        alone = f"layer {start} ({_gib(sizes[start])}) does not fit any stage alone"
        return CapacityError(alone, sizes[start], max(rooms))

    told = [
        f"stage {s} (capacity {_gib(rooms[s])}) holds {holds(a, b)} and cannot also take "
        f"layer {b} ({_gib(sizes[b])})"
        for s, (a, b) in enumerate(held)
    ]
    if len(told) > 3:
        told[1:-1] = [f"stages 1-{len(rooms) - 2} hold {holds(held[1][0], held[-2][1])}"]
    return CapacityError(
        f"{holds(0, layers)} do not fit {len(rooms)} stages in order: {'; '.join(told)}, "
        f"leaving {holds(start, layers)}",
        resident[start + 1] - resident[held[-1][0]],
        rooms[-1],
    )


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / GIB:.2f} GiB"
