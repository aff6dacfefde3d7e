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

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def read_env(local_rank_arg: int | None = None) -> DistEnv:
    """RANK/LOCAL_RANK/WORLD_SIZE, or a single process on this host when none is set."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    fallback = local_rank_arg if local_rank_arg is not None else rank
    local_rank = int(os.environ.get("LOCAL_RANK", fallback))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size))
    return DistEnv(rank, local_rank, world_size)


def init(env: DistEnv, cuda: bool, timeout_s: float) -> None:
    """torch.distributed through DeepSpeed: NCCL on GPUs, gloo in CPU mock mode. Every
    collective gives up after `timeout_s`, so a dead rank cannot hang the others for ever."""
    import deepspeed
    import torch

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


def singleton_groups():
    """megatron-core process groups for TP=1 layers: tensor, pipeline and context parallel groups
    of this rank alone (the pipeline itself is DeepSpeed's)."""
    import torch.distributed as torch_dist
    from megatron.core.process_groups_config import ProcessGroupCollection

    own, _ = torch_dist.new_subgroups(group_size=1)
    return ProcessGroupCollection(tp=own, pp=own, cp=own)
