"""The tie-break among partitions of equal (minimal) bottleneck: a DP over the band of cuts a
partition within the bottleneck can use (partition.py finds the band and calls `tie_break`).

`chain` is partition.py's `_Chain` (prefix sums `cost`, `resident`, boundary `size`, per-link
`latency` and `speed`, per-stage `capacity`, `slack(limit)`, `layers`, `stages`, `problem`).
"""

from bisect import bisect_right
from itertools import accumulate

TIE_GRID = 2**40  # stage times are compared in units of bottleneck / TIE_GRID
TIE_WORK_LIMIT = 1_000_000  # stage evaluations the tie-break may spend (~0.3 s)


def tie_break(chain, limit: float, lo: list[int], hi: list[int]) -> tuple[int, ...] | None:
    """The partition within `limit` with the smallest (sum of hops, sum of squared stage times,
    sum of squared compute times) on the grid, by a DP over the band; None past TIE_WORK_LIMIT.

    Each layer's cost and each hop is rounded to the grid and a stage's time is the sum of its
    parts there, so equal sums are equal integers; a path's key packs the three sums into one
    integer, so comparisons are exact and lexicographic. Each hop is paid by both stages it
    joins, so the hops order the sums of stage times; squared compute settles exact ties (one
    layer per stage rather than an empty stage between two)."""
    cost, resident, size, stages = chain.cost, chain.resident, chain.size, chain.stages
    scale = min(TIE_GRID / limit, 1e300) if limit > 0 else 1.0  # subnormal limits
    grid = [0, *accumulate(round(c * scale) for c in chain.problem.layer_costs)]
    shift = 2 * TIE_GRID.bit_length() + stages.bit_length() + 3  # holds a sum of squares
    never = 1 << (3 * shift)

    def on_grid(seconds: float) -> int:  # a hop over the limit is never used
        return round(min(seconds, limit) * scale)

    keys, hops_in, parents, work = [0], [0.0], [], 0
    for s in range(stages):
        first, ends = lo[s], range(lo[s + 1], hi[s + 1] + 1)
        hops_out = [chain.latency[s] + size[e] / chain.speed[s] for e in ends]
        grid_in, grid_out = list(map(on_grid, hops_in)), list(map(on_grid, hops_out))
        cuts = [hop << 2 * shift for hop in grid_out]
        reach, room = limit + chain.slack(limit) - min(hops_out), chain.capacity[s]
        new, parent = [never] * len(ends), [-1] * len(ends)
        for a in range(first, hi[s] + 1):
            key, hop_in, grid_hop = keys[a - first], hops_in[a - first], grid_in[a - first]
            if key == never:
                continue
            top = bisect_right(cost, reach - hop_in + cost[a], a, ends.stop) - 1
            top = min(top, bisect_right(resident, resident[a] + room, a, top + 1) - 1)
            for e in range(max(a, ends.start), top + 1):
                i = e - ends.start
                if (hop_in + (cost[e] - cost[a])) + hops_out[i] <= limit:
                    busy = grid[e] - grid[a]
                    whole = grid_hop + busy + grid_out[i]
                    total = key + cuts[i] + (whole * whole << shift) + busy * busy
                    if total < new[i]:
                        new[i], parent[i] = total, a
            work += top + 1 - ends.start
        if work > TIE_WORK_LIMIT:
            return None
        keys, hops_in = new, hops_out
        parents.append(parent)
    if keys[-1] == never:
        return None
    bounds = [chain.layers]
    for s in reversed(range(stages)):
        bounds.append(parents[s][bounds[-1] - lo[s + 1]])
    return tuple(reversed(bounds))
