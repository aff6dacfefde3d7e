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


class RunFailedError(RuntimeError):
    """A launched run of the runtime failed or ran out of time; a RuntimeError, as callers of
    `cli.common.run_quietly` expect."""

    def __init__(self, name: str, detail: str, exit_code: int | None, timeout_s: float):
        self.name = name
        self.detail = detail
        self.exit_code = exit_code
        """None: it ran past timeout_s and was killed."""
        self.timeout_s = timeout_s
        if exit_code is None:
            head = f"run {name!r} did not finish in {timeout_s:g} s; every process of it was killed"
        else:
            head = f"run {name!r} failed (exit {exit_code})"
        super().__init__(f"{head}: {detail}" if detail else head)


class AllRunsFailedError(RuntimeError):
    """Every candidate of a tuning failed: nothing was measured; `errors` maps each to its
    error."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        lines = "\n".join(f"  - {name}: {error}" for name, error in self.errors.items())
        count = len(self.errors)
        super().__init__(f"all {count} candidate{'s' if count != 1 else ''} failed\n{lines}")
