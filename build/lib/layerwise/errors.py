"""Typed errors that carry the numbers, and the one set of exit codes every command uses.

The CLIs turn a LayerwiseError into one message and ExitCode.USAGE."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `layerwise-plan`, `-infer`, `-compare` and `-calibrate` return."""

    OK = 0
    INTERNAL = 1
    """An internal error: Python prints its traceback."""
    USAGE = 2
    """Bad input (config, world size, an output path): one message naming the field."""
    VERIFY_FAILED = 3
    """`--verify` found outputs that differ from the one-process reference (results written,
    marked failed)."""


class LayerwiseError(Exception):
    """Base class of the errors a user can cause with a config or an input."""


class ConfigError(LayerwiseError):
    """Every problem found in one config, each naming its field and the numbers."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = tuple(problems)
        self.source = source
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''}\n{lines}")


class CapacityError(LayerwiseError):
    """The layers cannot be placed on the stages within the per-GPU memory capacity."""

    def __init__(self, reason: str, needed_bytes: float, capacity_bytes: float):
        self.needed_bytes = needed_bytes
        self.capacity_bytes = capacity_bytes
        super().__init__(
            f"{reason}: needs {needed_bytes / 2**30:.2f} GiB per GPU, "
            f"capacity {capacity_bytes / 2**30:.2f} GiB"
        )
