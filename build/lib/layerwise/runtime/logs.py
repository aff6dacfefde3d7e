"""Quiet by default: our messages through `logging`, DeepSpeed's and megatron-core's chatter
(INFO logs, construction prints such as "SEED_LAYERS=..." and "Using topology", Python
warnings) only with --verbose."""

import contextlib
import io
import logging
import warnings

log = logging.getLogger("layerwise")


def configure(verbose: bool) -> None:
    """Our log at INFO (DEBUG with --verbose); megatron-core's and DeepSpeed's Python warnings
    hidden unless verbose."""
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        warnings.filterwarnings("ignore", module="megatron")
        warnings.filterwarnings("ignore", module="deepspeed")


def quiet_deepspeed() -> None:
    """DeepSpeed's logger at WARNING unless verbose. Call after `import deepspeed` (which sets
    it to INFO) and, in CPU mock mode, after the mock patches (which choose its accelerator)."""
    from deepspeed.utils import logger as deepspeed_logger

    verbose = log.isEnabledFor(logging.DEBUG)
    deepspeed_logger.setLevel(logging.INFO if verbose else logging.WARNING)


@contextlib.contextmanager
def quiet_prints():
    """Inside: print() output is dropped, unless --verbose."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield
