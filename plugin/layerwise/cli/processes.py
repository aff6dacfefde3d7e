"""Launched runs that end with the command that started them: the launcher in a session of its
own, and on a timeout, Ctrl-C or SIGTERM every process it started is killed (its process group
and every descendant that left it: torchrun starts each worker in a new session), so no rank
outlives the command."""

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import psutil

REAP_S = 5.0  # how long to wait for the killed processes to be gone
SIGTERM_EXIT = 128 + signal.SIGTERM  # a shell's exit status for "ended by SIGTERM"


def stopped_tree(root: int) -> list[psutil.Process]:
    """`root` and every descendant, each stopped (SIGSTOP) as it is found, so that none starts
    another unseen; walked by parent, since descendants may have left the root's group."""
    found: dict[int, psutil.Process] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in found:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process = psutil.Process(pid)
            process.suspend()
            found[pid] = process
            frontier += [child.pid for child in process.children()]
    return list(found.values())


def leads_group(pid: int) -> bool:
    """Whether `pid` leads its own process group (so killing that group spares ours)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def end_tree(process: subprocess.Popen) -> None:
    """Kill the launcher, its group (if it leads one) and every descendant, then reap it."""
    tree = stopped_tree(process.pid)
    if leads_group(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(tree, timeout=REAP_S)
    process.wait()


def _terminate(signum, frame) -> None:
    raise SystemExit(SIGTERM_EXIT)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Inside it, SIGTERM raises SystemExit(143) in the main thread, so `finally` and `except`
    blocks run (Python's default ends the process at once, leaving its children running)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:  # someone else handles it: leave theirs
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_captured(command: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """`command` in a new session with its output captured; on a timeout (TimeoutExpired),
    Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit) every process it started is killed before
    the exception goes on."""
    with sigterm_unwinds():
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired as late:
                end_tree(process)
                late.output, late.stderr = process.communicate()  # what it printed until then
                raise
            except BaseException:
                end_tree(process)
                raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@contextlib.contextmanager
def ended_on_exit(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """`process` (started by the caller) and its descendants killed if the block raises,
    Ctrl-C and SIGTERM included."""
    with sigterm_unwinds():
        try:
            yield process
        except BaseException:
            end_tree(process)
            raise
