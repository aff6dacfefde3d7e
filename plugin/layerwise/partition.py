"""Exact min-bottleneck contiguous partition of a chain of layers onto pipeline stages.

Stage s holding layers [a, b) costs
    in_s(x_a) + sum(layer_costs[a:b]) + out_s(x_b)
where x_i is the activation size entering layer i (x_L leaves the last layer), in_s is the
receive over the link from stage s-1 (none for s = 0), out_s the send to stage s+1 (none for the
last stage); an empty stage (a == b) still receives and forwards its input. Stage s may hold at
most capacity_bytes[s] of resident bytes (weights, KV cache). The partitioner minimises the most
expensive stage, which bounds the steady-state period of an inference pipeline.

Search: bisection on the bottleneck with a feasibility probe, then a check that no partition is
cheaper by a relative 1e-9 (a failed check resumes the bisection below the cheaper bottleneck).
The probe is greedy (furthest reach per stage, O(S log L)) when every boundary carries the same
bytes, which makes reach monotone in the start; otherwise a sliding-window DP (O(S L)) that is
exact for any boundary sizes. Among tying placements, the greedy case then picks one whose
busiest stage computes least (`_balance`).
"""

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from itertools import accumulate

from layerwise.errors import CapacityError

RELATIVE_TOLERANCE = 1e-9  # optimality is checked to this
BISECTION_TOLERANCE = 1e-6  # bisection stops here, then the check above runs


@dataclass(frozen=True)
class Link:
    """A stage-to-stage link: time = latency_s + bytes / bytes_per_s."""

    latency_s: float
    bytes_per_s: float

    def time(self, num_bytes: float) -> float:
        return self.latency_s + num_bytes / self.bytes_per_s


@dataclass(frozen=True)
class PartitionProblem:
    """Per-layer costs (seconds for one chunk) and sizes; links[j] joins stage j and j+1."""

    layer_costs: tuple[float, ...]
    boundary_bytes: tuple[float, ...]
    resident_bytes: tuple[float, ...]
    links: tuple[Link, ...]
    capacity_bytes: tuple[float, ...]

    def __post_init__(self):
        layers, stages = len(self.layer_costs), len(self.capacity_bytes)
        if len(self.boundary_bytes) != layers + 1 or len(self.resident_bytes) != layers:
            raise ValueError(
                f"{layers} layers need {layers + 1} boundary sizes and {layers} resident sizes, "
                f"got {len(self.boundary_bytes)} and {len(self.resident_bytes)}"
            )
        if len(self.links) != stages - 1:
            raise ValueError(f"{stages} stages need {stages - 1} links, got {len(self.links)}")
        if stages < 1 or min(self.layer_costs, default=0.0) < 0:
            raise ValueError("need at least one stage and non-negative layer costs")

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


class _Prefix:
    """Prefix sums so that a stage's cost and bytes are O(1)."""

    def __init__(self, problem: PartitionProblem):
        self.problem = problem
        self.cost = [0.0, *accumulate(problem.layer_costs)]
        self.resident = [0.0, *accumulate(problem.resident_bytes)]
        # With uniform boundary bytes, every stage pays the same transfers wherever it starts.
        self.transfers = [
            self.transfer_in(s, 0) + self.transfer_out(s, 0) for s in range(problem.num_stages)
        ]

    def transfer_in(self, stage: int, start: int) -> float:
        if stage == 0:
            return 0.0
        return self.problem.links[stage - 1].time(self.problem.boundary_bytes[start])

    def transfer_out(self, stage: int, stop: int) -> float:
        if stage == self.problem.num_stages - 1:
            return 0.0
        return self.problem.links[stage].time(self.problem.boundary_bytes[stop])

    def stage_cost(self, stage: int, start: int, stop: int) -> float:
        compute = self.cost[stop] - self.cost[start]
        return self.transfer_in(stage, start) + compute + self.transfer_out(stage, stop)

    def fits(self, stage: int, start: int, stop: int) -> bool:
        needed = self.resident[stop] - self.resident[start]
        return needed <= self.problem.capacity_bytes[stage]


def stage_costs(problem: PartitionProblem, boundaries: tuple[int, ...]) -> tuple[float, ...]:
    """Cost of every stage of a given partition (e.g. one of DeepSpeed's, for comparison)."""
    prefix = _Prefix(problem)
    return tuple(
        prefix.stage_cost(s, boundaries[s], boundaries[s + 1]) for s in range(problem.num_stages)
    )


def fits_capacity(problem: PartitionProblem, boundaries: tuple[int, ...]) -> bool:
    prefix = _Prefix(problem)
    return all(prefix.fits(s, boundaries[s], boundaries[s + 1]) for s in range(problem.num_stages))


def _probe_greedy(
    prefix: _Prefix, limit: float, compute_limit: float = float("inf")
) -> tuple[int, ...] | None:
    """Uniform boundary bytes: each stage takes the furthest reach within `limit`, capacity and
    (when balancing) `compute_limit` on its layers' own cost."""
    problem, cost, resident = prefix.problem, prefix.cost, prefix.resident
    layers, start, bounds = problem.num_layers, 0, [0]
    for stage, room in enumerate(problem.capacity_bytes):
        budget = min(limit - prefix.transfers[stage], compute_limit)
        if budget < 0:
            return None
        by_time = bisect_right(cost, cost[start] + budget) - 1
        by_memory = bisect_right(resident, resident[start] + room) - 1
        start = max(start, min(by_time, by_memory, layers))
        bounds.append(start)
    return tuple(bounds) if start == layers else None


def _probe_window(prefix: _Prefix, limit: float) -> tuple[int, ...] | None:
    """Any boundary bytes: reachable ends per stage by a sliding-window maximum over starts.

    End b of stage s is reachable from a reachable start a <= b when
    cost[a] - in_s(a) >= cost[b] + out_s(b) - limit and resident[b] - resident[a] <= capacity.
    The memory condition is a window a >= low(b), low non-decreasing in b: a monotone deque.
    """
    problem = prefix.problem
    layers = problem.num_layers
    reachable = [True] + [False] * layers
    parents: list[list[int]] = []
    for stage in range(problem.num_stages):
        room = problem.capacity_bytes[stage]
        window: deque[tuple[float, int]] = deque()
        parent = [-1] * (layers + 1)
        next_reachable = [False] * (layers + 1)
        low = 0
        for stop in range(layers + 1):
            if reachable[stop]:
                score = prefix.cost[stop] - prefix.transfer_in(stage, stop)
                while window and window[-1][0] <= score:
                    window.pop()
                window.append((score, stop))
            while prefix.resident[stop] - prefix.resident[low] > room:
                low += 1
            while window and window[0][1] < low:
                window.popleft()
            need = prefix.cost[stop] + prefix.transfer_out(stage, stop) - limit
            if window and window[0][0] >= need:
                next_reachable[stop] = True
                parent[stop] = window[0][1]
        parents.append(parent)
        reachable = next_reachable
    if not reachable[layers]:
        return None
    bounds = [layers]
    for parent in reversed(parents):
        bounds.append(parent[bounds[-1]])
    return tuple(reversed(bounds))


def partition(problem: PartitionProblem) -> Partition:
    """The contiguous partition with the smallest bottleneck (to a relative 1e-9) within capacity.

    Raises CapacityError when no placement fits the per-stage capacities at any cost.
    """
    prefix = _Prefix(problem)
    uniform = len(set(problem.boundary_bytes)) == 1
    probe = _probe_greedy if uniform else _probe_window
    best = probe(prefix, float("inf"))
    if best is None:
        _raise_capacity(problem)
    even = uniform_boundaries(problem.num_layers, problem.num_stages)
    if fits_capacity(problem, even) and max(stage_costs(problem, even)) < max(
        stage_costs(problem, best)
    ):
        best = even
    high = max(stage_costs(problem, best))
    low = max(0.0, sum(problem.layer_costs) / problem.num_stages)
    while True:
        while high - low > BISECTION_TOLERANCE * high:
            middle = (low + high) / 2
            if not low < middle < high:  # no float left in between (subnormal costs)
                break
            found = probe(prefix, middle)
            found_cost = high if found is None else max(stage_costs(problem, found))
            if found_cost >= high:  # infeasible (or no better, by rounding): search above
                low = middle
            else:
                best, high = found, found_cost
        cheaper = probe(prefix, high * (1 - RELATIVE_TOLERANCE))
        cheaper_cost = high if cheaper is None else max(stage_costs(problem, cheaper))
        if cheaper_cost >= high:
            if uniform:
                best = _balance(prefix, high, best)
            return Partition(best, stage_costs(problem, best))
        best, high = cheaper, cheaper_cost


def _balance(prefix: _Prefix, bottleneck: float, best: tuple[int, ...]) -> tuple[int, ...]:
    """Among placements within `bottleneck`, one whose busiest stage has the least compute.

    Many placements tie when transfers set the bottleneck (small layers, a slow link); this
    spreads the layers instead of packing them on the first stages, which spreads weights and
    memory too. Exact for uniform boundary bytes (the greedy probe stays exact with a second
    monotone limit).
    """

    def busiest(bounds: tuple[int, ...]) -> float:
        return max(prefix.cost[b] - prefix.cost[a] for a, b in zip(bounds, bounds[1:]))

    low, high = 0.0, busiest(best)
    while high - low > BISECTION_TOLERANCE * high:
        middle = (low + high) / 2
        if not low < middle < high:  # no float left in between (subnormal costs)
            break
        found = _probe_greedy(prefix, bottleneck, middle)
        found_cost = high if found is None else busiest(found)
        if found_cost >= high:
            low = middle
        else:
            best, high = found, found_cost
    return best


def _raise_capacity(problem: PartitionProblem) -> None:
    largest = max(problem.resident_bytes)
    room = max(problem.capacity_bytes)
    if largest > room:
        raise CapacityError("the largest layer alone does not fit one GPU", largest, room)
    total = sum(problem.resident_bytes)
    raise CapacityError(
        f"{problem.num_layers} layers ({total / 2**30:.2f} GiB) do not fit "
        f"{problem.num_stages} stages",
        total / problem.num_stages,
        sum(problem.capacity_bytes) / problem.num_stages,
    )


def uniform_boundaries(num_layers: int, num_stages: int) -> tuple[int, ...]:
    """Equal layer counts, the remainder on the first stages (DeepSpeed's 'uniform' counts)."""
    base, extra = divmod(num_layers, num_stages)
    sizes = [base + (1 if s < extra else 0) for s in range(num_stages)]
    return (0, *accumulate(sizes))
