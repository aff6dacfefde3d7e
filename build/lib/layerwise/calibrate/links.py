"""p2p and all-reduce between local ranks over the backend the runtime uses (gloo on CPU ranks,
NCCL on GPUs), with their latency floors: the intra_node link of a profile."""

import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as multiprocessing

from layerwise.calibrate.fit import fit_line, significant
from layerwise.model.spec import ModelSpec

REPEATS = 15  # round trips or all-reduces per size (median, after 2 warm-ups)
TIMEOUT_S = 120.0


def _median_seconds(work, cuda: bool) -> float:
    samples = []
    for _ in range(REPEATS + 2):
        dist.barrier()
        begin = time.perf_counter()
        work()
        if cuda:
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples[2:])


def _worker(
    rank: int, world: int, group: int, port: int, sizes: list[int], out: str, model: ModelSpec
) -> None:
    """One local rank: ping-pong between ranks 0 and 1, then all-reduces over ranks
    [0, group), of float32 tensors of each size in bytes, while the other ranks wait as idle
    ranks of a run do; on CPU ranks then the sharing slowdown of `model`'s layer calls; rank 0
    writes {"p2p": .., "allreduce": .., "slowdown": ..}."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(rank)
    else:
        torch.set_num_threads(1)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=TIMEOUT_S),
    )
    members = dist.new_group(list(range(group)))
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    p2p, allreduce = {}, {}
    for size in [sizes[0], *sizes]:  # the first size twice: connections open on first use
        tensor = torch.ones(max(1, size // 4), device=device)

        def round_trip(tensor=tensor):
            if rank == 0:
                dist.send(tensor, 1)
                dist.recv(tensor, 1)
            elif rank == 1:
                dist.recv(tensor, 0)
                dist.send(tensor, 0)

        p2p[size] = _median_seconds(round_trip, cuda) / 2

        def reduce(tensor=tensor):
            if rank < group:
                dist.all_reduce(tensor, group=members)

        allreduce[size] = _median_seconds(reduce, cuda)
    slowdown = 0.0 if cuda else _sharing_slowdown(rank, world, _layer_calls(model, world))
    if rank == 0:
        timings = {"p2p": p2p, "allreduce": allreduce, "slowdown": slowdown}
        Path(out).write_text(json.dumps(timings))
    dist.destroy_process_group()


def _layer_calls(model: ModelSpec, world: int):
    """A function timing a run of one-token calls of `model`'s tiny block (as calibrate's host
    time measures), about 0.1 s: long enough that every rank overlaps the others."""
    from layerwise.calibrate.layers import tiny_model
    from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches
    from layerwise.runtime.distributed import singleton_groups
    from layerwise.runtime.model import PresetLayer

    apply_cpu_mock_patches()
    tiny = tiny_model(model)
    groups = singleton_groups(world, TIMEOUT_S)
    index = 1 if tiny.vocab_size else 0
    layer = PresetLayer(tiny, index, 1234, torch.float32, torch.device("cpu"), groups)
    shape = (1, tiny.hidden) if tiny.kind == "dense" else (1, 1, tiny.hidden)
    hidden = torch.randn(*shape)

    def run() -> float:
        begin = time.perf_counter()
        with torch.no_grad():
            for _ in range(200):
                layer(hidden)
        return time.perf_counter() - begin

    return run


def _sharing_slowdown(rank: int, world: int, work) -> float:
    """How much longer `work` (layer calls) takes when every rank runs it at once than on rank 0
    alone (the others waiting), medians of 5, averaged over ranks: world / cores where the
    cores are shared fairly, more where ranks also evict each other's caches or wait for the
    scheduler. Returned on rank 0 (others: 0)."""
    alone, together = [], []
    for _ in range(6):
        dist.barrier()
        if rank == 0:
            alone.append(work())
        dist.barrier()
        together.append(work())
    reference = torch.tensor([statistics.median(alone[1:]) if rank == 0 else 0.0])
    dist.broadcast(reference, 0)
    ratio = torch.tensor([statistics.median(together[1:]) / reference.item()])
    dist.all_reduce(ratio)  # summed over ranks: their mean x world
    return ratio.item() / world if rank == 0 else 0.0


def local_ranks(cuda: bool, config_gpus: int) -> int:
    """Ranks to measure between: the config's, up to the GPUs here; on CPU the config's mock
    ranks (2 to 8), which share the cores as they do in a run."""
    if cuda:
        return min(config_gpus, torch.cuda.device_count())
    return max(2, min(config_gpus, 8))


def measure_link(
    world: int, group: int, port: int, cuda: bool, model: ModelSpec
) -> tuple[float, dict]:
    """The intra_node figures from `world` local ranks: p2p latency (the smallest message's
    one-way time) and bandwidth (fit), and over a group of `group` of them (the baseline's
    tensor-parallel degree) the all-reduce latency floor (the smallest message) and bus
    bandwidth by size (nccl-tests: 2(n-1)/n x bytes / time); and on CPU ranks how much all of
    them computing at once slows each (0 on GPUs)."""
    top = 2**28 if cuda else 2**22
    sizes = [2**k for k in range(12, top.bit_length(), 2)]
    with tempfile.TemporaryDirectory() as scratch:
        out = str(Path(scratch) / "links.json")
        multiprocessing.spawn(
            _worker, args=(world, group, port, sizes, out, model), nprocs=world, join=True
        )
        timings = json.loads(Path(out).read_text())
    p2p = {int(size): seconds for size, seconds in timings["p2p"].items()}
    allreduce = {int(size): seconds for size, seconds in timings["allreduce"].items()}
    share = 2 * (group - 1) / group
    line = fit_line([(float(size), seconds) for size, seconds in p2p.items()])
    busbw = {size: significant(share * size / seconds / 1e9) for size, seconds in allreduce.items()}
    return timings["slowdown"], {
        "p2p_latency_us": significant(p2p[min(p2p)] * 1e6),
        "p2p_gbs": significant(line.gbs),
        "allreduce_latency_us": significant(allreduce[min(allreduce)] * 1e6),
        "allreduce_busbw_gbs": max(busbw.values()),
        "allreduce_busbw_measured_gbs": busbw,
    }
