"""Quiet by default, everything with --verbose."""

import logging

from layerwise.runtime import logs


def test_prints_inside_the_library_calls_show_only_when_verbose(capsys):
    for verbose in (False, True):
        logs.configure(verbose)
        with logs.quiet_prints():
            print("Using topology: ...")
        assert ("Using topology" in capsys.readouterr().out) == verbose
    logs.configure(False)


def test_deepspeed_logger_is_quiet_unless_verbose():
    from deepspeed.utils import logger

    for verbose, level in ((False, logging.WARNING), (True, logging.INFO)):
        logs.configure(verbose)
        logs.quiet_deepspeed()
        assert logger.level == level
    logs.configure(False)
