"""Process-group set-up: rank and world size are read from the environment once, by the
launcher, and passed on from there."""

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class DistEnv:
    """This process's place, as torchrun or the deepspeed launcher set it."""

    rank: int
    local_rank: int
    world_size: int
    launched: bool = True
    """False when no launcher set WORLD_SIZE (the script was run as a plain process)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def read_env(local_rank_arg: int | None = None) -> DistEnv:
    """RANK/LOCAL_RANK/WORLD_SIZE, or a single process on this host when none is set."""
    launched = "WORLD_SIZE" in os.environ
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    fallback = local_rank_arg if local_rank_arg is not None else rank
    local_rank = int(os.environ.get("LOCAL_RANK", fallback))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size))
    return DistEnv(rank, local_rank, world_size, launched)


def init(env: DistEnv, cuda: bool, timeout_s: float) -> None:
    """torch.distributed through DeepSpeed: NCCL on GPUs, gloo in CPU mock mode. Every
    collective gives up after `timeout_s`, so a dead rank cannot hang the others for ever."""
    import deepspeed
    import torch

    from layerwise.runtime.compat.c10d import set_default_timeouts

    set_default_timeouts(timeout_s)  # also for the groups DeepSpeed and megatron-core create
    if cuda:
        torch.cuda.set_device(env.local_rank)
    deepspeed.init_distributed(
        dist_backend="nccl" if cuda else "gloo",
        auto_mpi_discovery=False,
        verbose=False,
        timeout=timedelta(seconds=timeout_s),
        rank=env.rank,
        world_size=env.world_size,
    )


def subgroups(lists: list[list[int]], timeout_s: float):
    """This rank's group among `lists` (every rank must call this with the same lists)."""
    import torch.distributed as torch_dist

    own, _ = torch_dist.new_subgroups_by_enumeration(lists, timeout=timedelta(seconds=timeout_s))
    return own


def megatron_groups(tensor_lists: list[list[int]], pipe_lists: list[list[int]], timeout_s: float):
    """megatron-core's process-group collection for one layout: tensor- and pipeline-parallel
    groups as given, context and data parallelism of this rank alone, no embedding groups (the
    presets have none). Passed explicitly to layers and schedule: no megatron global state."""
    from megatron.core.process_groups_config import ProcessGroupCollection

    alone = [[rank] for rank in range(sum(len(group) for group in tensor_lists))]
    own = subgroups(alone, timeout_s)
    tensor = own if tensor_lists == alone else subgroups(tensor_lists, timeout_s)
    pipe = own if pipe_lists == alone else subgroups(pipe_lists, timeout_s)
    return ProcessGroupCollection(tp=tensor, pp=pipe, cp=own, dp_cp=own, embd=None, pos_embd=None)


def singleton_groups(world_size: int, timeout_s: float):
    """megatron-core process groups for layers that megatron neither shards nor pipelines: every
    group is this rank alone (the layer-wise pipeline belongs to DeepSpeed)."""
    alone = [[rank] for rank in range(world_size)]
    return megatron_groups(alone, alone, timeout_s)
