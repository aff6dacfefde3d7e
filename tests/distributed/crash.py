"""launch/infer.py with rank 1 failing (a test double, not product code): CRASH_AT=build fails
while it builds its part, CRASH_AT=prefill in its first prefill, when the other ranks are already
inside the pipeline schedule waiting for it. None of them may hang."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from layerwise.cli import infer as launcher  # noqa: E402
from layerwise.runtime.runners import base as runners

real_build = runners.build_runner


def fail(*args, **kwargs):
    raise RuntimeError(f"injected failure on rank 1 at {os.environ['CRASH_AT']}")


def build_or_die(config, layout, assignment, device):
    if int(os.environ["RANK"]) != 1:
        return real_build(config, layout, assignment, device)
    if os.environ["CRASH_AT"] == "build":
        fail()
    built = real_build(config, layout, assignment, device)
    built.prefill = fail
    return built


runners.build_runner = build_or_die

if __name__ == "__main__":
    sys.exit(launcher.main())
