"""Output paths checked before any work is done: a run is never lost at its end because the
file it writes cannot be written, and no output replaces a config or a special file."""

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def output_problems(flag: str, path: Path | None, inputs: Iterable[Path] = ()) -> list[str]:
    """What stops `flag`'s `path` from being written atomically (a temporary file beside it,
    renamed over it): its folder missing or not writable, the path a folder or an existing file
    that is not a regular one (a device, a FIFO, a socket), a name too long, or one of the
    command's `inputs` (its config). Empty when `path` is None or fine."""
    if path is None:
        return []
    shown = str(path)[:200]
    folder = path.parent
    try:
        if not folder.is_dir():
            return [f"{flag}: folder {str(folder)[:200]!r} does not exist"]
        if path.is_dir():
            return [f"{flag}: {shown!r} is a folder; give a file name"]
        if path.exists() and not path.is_file():
            return [f"{flag}: {shown!r} exists and is not a regular file; it is not replaced"]
        for given in inputs:
            if path.exists() and given.exists() and os.path.samefile(path, given):
                return [f"{flag}: {shown!r} is the input {str(given)[:200]!r}; it is not replaced"]
    except OSError as error:  # a name too long, a folder that cannot be read
        return [f"{flag}: {shown!r}: {error.strerror or error}"]
    return _creatable(flag, path, shown)


def folder_problems(flag: str, folder: Path | None) -> list[str]:
    """`flag`'s folder (runs are written into it) must exist; empty when None or fine."""
    if folder is None or folder.resolve().is_dir():
        return []
    return [f"{flag}: folder {str(folder)[:200]!r} does not exist"]


def _creatable(flag: str, path: Path, shown: str) -> list[str]:
    """Try what write_atomically will do first: create a temporary file beside `path` (then
    remove it). Catches read-only folders, /proc and /sys, and names over the system's limit."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        return [f"{flag}: cannot write beside {shown!r}: {error.strerror or error}"]
    os.close(handle)
    os.unlink(temporary)
    return []
