"""torch.distributed's c10d defaults: the one process-global setting the runtime changes.

Groups that DeepSpeed and megatron-core create without a timeout get c10d's module-level default
(30 minutes); making it the run's timeout means a rank that dies before joining one cannot stall
the others for long.
"""

from datetime import timedelta


def set_default_timeouts(timeout_s: float) -> None:
    """c10d's default group timeouts (gloo and NCCL) become `timeout_s`, for this process."""
    from torch.distributed import distributed_c10d

    distributed_c10d.default_pg_timeout = timedelta(seconds=timeout_s)
    distributed_c10d.default_pg_nccl_timeout = timedelta(seconds=timeout_s)
