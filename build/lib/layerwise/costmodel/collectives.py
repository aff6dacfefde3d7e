"""Collective and point-to-point times over one link level (formulas in docs/cost-model.md):

all-reduce = max(latency, 2(n-1)/n * bytes / busbw(bytes))  (measured table; messages below its
             smallest size cost that size's time), or latency + 2(n-1)/n * bytes / bw;
all-gather = (n-1)/n * bytes / busbw(bytes), same floor, or latency + (n-1)/n * bytes / bw;
p2p        = latency + bytes / bw.
"""

import math
from bisect import bisect_left

from layerwise.hardware.spec import LinkSpec


def interpolate_log(table: dict[int, float], x: float) -> float:
    """Piecewise-linear in log(x), clamped to the end values."""
    keys = sorted(table)
    if x <= keys[0]:
        return table[keys[0]]
    if x >= keys[-1]:
        return table[keys[-1]]
    upper = bisect_left(keys, x)
    x0, x1 = keys[upper - 1], keys[upper]
    weight = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return table[x0] + weight * (table[x1] - table[x0])


def _busbw_time(link: LinkSpec, share: float, num_bytes: float) -> float:
    """share x bytes / busbw(bytes) from the measured table, no less than the latency floor
    (messages below the table's smallest cost at least its time), else latency + share x
    bytes / busbw."""
    table = link.allreduce_busbw_measured_gbs
    if table:
        size = max(num_bytes, min(table))
        measured = share * size / (interpolate_log(table, size) * 1e9)
        return max(link.allreduce_latency_us * 1e-6, measured)
    return link.allreduce_latency_us * 1e-6 + share * num_bytes / (link.allreduce_busbw_gbs * 1e9)


def allreduce_time(link: LinkSpec, num_bytes: float, group_size: int) -> float:
    """Ring all-reduce of `num_bytes` over `group_size` GPUs (nccl-tests bus-bandwidth model):
    2(n-1)/n * bytes / busbw."""
    if group_size <= 1 or num_bytes <= 0:
        return 0.0
    return _busbw_time(link, 2 * (group_size - 1) / group_size, num_bytes)


def allgather_time(link: LinkSpec, num_bytes: float, group_size: int) -> float:
    """Ring all-gather whose gathered result is `num_bytes` on every GPU: (n-1)/n * bytes /
    busbw, with the all-reduce's bus bandwidth (nccl-tests reports both on one scale)."""
    if group_size <= 1 or num_bytes <= 0:
        return 0.0
    return _busbw_time(link, (group_size - 1) / group_size, num_bytes)


def p2p_time(link: LinkSpec, num_bytes: float) -> float:
    return link.p2p_latency_us * 1e-6 + num_bytes / (link.p2p_gbs * 1e9)
