"""Input files (configs, HF config.json, hardware profiles) read within limits: a regular file
only (a FIFO or a device would block or never end), at most MAX_INPUT_BYTES, UTF-8; JSON that
Python can parse (not nested thousands deep, no integer of thousands of digits)."""

import json
import stat
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

MAX_INPUT_BYTES = 4 * 2**20  # the largest shipped input is a few KiB


class InputFileError(ValueError):
    """An input file that cannot be used, with what is wrong in `reason`."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def read_input(path: Path | Traversable) -> str:
    """The text of an input file; InputFileError when it is not a regular file, is larger than
    MAX_INPUT_BYTES, cannot be read or is not UTF-8."""
    try:
        if isinstance(path, Path):
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise InputFileError("not a regular file (a folder, device, FIFO or socket)")
            with path.open("rb") as stream:
                data = stream.read(MAX_INPUT_BYTES + 1)
        else:  # a profile inside the installed package
            data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read: {error.strerror or error}") from None
    except ValueError as error:  # a path with a NUL byte
        raise InputFileError(f"cannot read: {error}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputFileError(f"larger than {MAX_INPUT_BYTES // 2**20} MiB: not an input file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(f"not UTF-8 text (byte {error.start})") from None


def parse_json(text: str) -> Any:
    """JSON text parsed; InputFileError with the line and column of a syntax error, or why
    Python cannot hold it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputFileError(
            f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except RecursionError:
        raise InputFileError("not usable JSON: nested too deep") from None
    except ValueError as error:  # an integer over Python's 4,300-digit limit
        raise InputFileError(f"not usable JSON: {str(error).splitlines()[0][:120]}") from None
