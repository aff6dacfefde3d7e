"""Output paths refused before any work, and write_atomically never replacing a special file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layerwise.cli import plan, tune
from layerwise.cli.common import write_atomically
from layerwise.cli.outputs import output_problems
from tests.conftest import CONFIGS

DENSE = CONFIGS / "mock_dense_layerwise.json"


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def test_a_writable_new_file_or_an_existing_regular_one_is_fine(tmp_path):
    assert output_problems("--json", tmp_path / "new.json") == []
    (tmp_path / "old.json").write_text("{}")
    assert output_problems("--json", tmp_path / "old.json") == []
    assert output_problems("--json", None) == []
    assert list(tmp_path.iterdir()) == [tmp_path / "old.json"]  # the trial file is gone


def test_bad_output_paths_are_named(tmp_path, fifo):
    config = tmp_path / "config.json"
    config.write_text("{}")
    cases = {
        tmp_path / "missing" / "x.json": "folder",
        tmp_path: "is a folder",
        fifo: "is not a regular file",
        config: "is the input",
        tmp_path / ("x" * 300 + ".json"): "x" * 50,
        Path("/proc/1/x.json"): "",
    }
    for path, words in cases.items():
        problems = output_problems("--json", path, [config])
        assert len(problems) == 1 and problems[0].startswith("--json: ") and words in problems[0]
        assert len(problems[0]) < 400  # a long name is cut, not repeated whole


def test_write_atomically_never_replaces_a_special_file(fifo):
    with pytest.raises(FileExistsError, match="not a regular file"):
        write_atomically(fifo, b"{}")
    assert fifo.is_fifo()


def test_plan_refuses_its_config_as_json_output_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(DENSE.read_text())
    assert plan.main(["--config", str(config), "--json", str(config)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert json.loads(config.read_text()) == json.loads(DENSE.read_text())


def test_tune_refuses_an_out_path_that_is_a_folder(tmp_path, capsys):
    assert tune.main(["--config", str(DENSE), "--out", str(tmp_path)]) == 2
    assert "--out: " in capsys.readouterr().err


def test_infer_refuses_a_results_path_in_proc_before_any_rank_starts(tmp_path):
    """The problem is an argument's (labelled so), found before the world size is checked."""
    done = subprocess.run(
        [sys.executable, "-m", "layerwise.cli.infer", "--config", str(DENSE)]
        + ["--results", "/proc/1/results.json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: arguments: 1 problem") and "--results: " in done.stderr
    assert "Traceback" not in done.stderr
