"""One-process gloo world for runtime unit tests (megatron layers need process groups)."""

import pytest


@pytest.fixture(scope="session")
def groups(tmp_path_factory):
    from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches

    apply_cpu_mock_patches()
    import torch.distributed as dist

    from layerwise.runtime.distributed import singleton_groups

    if not dist.is_initialized():
        store = tmp_path_factory.mktemp("store") / "file"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield singleton_groups(1, 60.0)
