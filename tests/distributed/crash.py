"""launch/infer.py with rank 1 failing while it builds its stage (a test double, not product
code): the other rank must not hang and the launcher must exit non-zero."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from layerwise.runtime import launcher, runner  # noqa: E402
from layerwise.runtime.distributed import read_env  # noqa: E402

real_build = runner.build_engine


def build_or_die(*args, **kwargs):
    if read_env().rank == 1:
        raise RuntimeError("injected failure on rank 1")
    return real_build(*args, **kwargs)


runner.build_engine = build_or_die

if __name__ == "__main__":
    sys.exit(launcher.main())
