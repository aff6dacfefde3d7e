"""Hostile or broken input files and values: each is one ConfigError naming what is wrong (so
one message and exit code 2), found quickly, never a traceback, a hang or an unbounded message."""

import json
import math
import os
import threading

import pytest
import yaml

from layerwise.config.files import MAX_INPUT_BYTES
from layerwise.config.load import load_config, parse_config
from layerwise.errors import ConfigError
from layerwise.hardware.spec import load_hardware
from tests.conftest import CONFIGS, PROFILES

DENSE = json.loads((CONFIGS / "mock_dense_layerwise.json").read_text())


def refused(path_or_data, *words: str) -> str:
    """The message of the ConfigError a config file (path) or data raises, checked for words."""
    with pytest.raises(ConfigError) as caught:
        if isinstance(path_or_data, dict):
            parse_config(path_or_data)
        else:
            load_config(path_or_data)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert len(message) < 2000, message[:300]
    return message


def written(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_config_files_that_are_not_usable_json(tmp_path):
    refused(written(tmp_path, "latin1.json", b'{"mode": "caf\xe9"}'), "not UTF-8 text (byte 13)")
    refused(written(tmp_path, "deep.json", b"[" * 100_000 + b"]" * 100_000), "nested too deep")
    huge = b'{"seed": ' + b"9" * 5000 + b"}"
    refused(written(tmp_path, "int.json", huge), "not usable JSON")
    big = written(tmp_path, "big.json", b" " * (MAX_INPUT_BYTES + 1))
    refused(big, "larger than 4 MiB")
    refused(tmp_path, "not a regular file")


def test_a_fifo_as_config_or_hf_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    done = []
    reader = threading.Thread(target=lambda: done.append(refused(fifo, "not a regular file")))
    reader.start()
    reader.join(timeout=10)
    assert done, "load_config blocked on a FIFO"
    data = json.loads(json.dumps(DENSE))
    data["model"] = {"hf_config": "/dev/zero"}
    refused(data, "model.hf_config", "not a regular file")


@pytest.mark.parametrize(
    "section, key, value, words",
    [
        ("layerwise", "l2_budget_fraction", math.nan, "must be a finite number, got nan"),
        ("run", "timeout_s", math.inf, "must be a finite number, got inf"),
        ("run", "seed", 10**15, "run.seed: must be <= 2147483647"),
        ("workload", "batch_size", 10**30, "workload.batch_size: must be <= 1048576"),
        ("workload", "seq_len", 1e300, "workload.seq_len: expected an integer"),
        ("hardware", "gpus", 10**9, "hardware.gpus: must be <= 65536"),
    ],
)
def test_values_that_are_not_finite_or_beyond_a_bound(section, key, value, words):
    data = json.loads(json.dumps(DENSE))
    data[section][key] = value
    refused(data, words)


def test_model_values_beyond_a_bound_and_odd_hf_values(tmp_path):
    data = json.loads(json.dumps(DENSE))
    data["model"] = {"preset": "mock-dense", "num_layers": 10**9}
    refused(data, "model.num_layers: must be <= 100000")
    data["model"] = {"preset": "mock-llama", "rope_base": math.inf}
    refused(data, "model.rope_base: must be a finite number")
    hf = json.loads((CONFIGS / "hf" / "mock-llama" / "config.json").read_text())
    hf["model_type"] = []
    (tmp_path / "config.json").write_text(json.dumps(hf))
    data["model"] = {"hf_config": str(tmp_path / "config.json")}
    refused(data, "model_type")


def profile_with(tmp_path, changes: dict):
    data = yaml.safe_load((PROFILES / "cpu-mock.yaml").read_text())
    data.update(changes)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_profiles_with_nan_mixed_keys_or_an_alias_bomb(tmp_path):
    for field in ("gemm_floor_us", "kernel_fixed_us"):
        with pytest.raises(ConfigError, match=f"hardware.{field}: must be a finite number"):
            load_hardware(profile_with(tmp_path, {field: math.nan}))
    with pytest.raises(ConfigError, match=r"hardware.layer_host_us\['gpt'\]: must be a finite"):
        load_hardware(profile_with(tmp_path, {"layer_host_us": {"gpt": math.inf}}))
    with pytest.raises(ConfigError, match=r"hardware.layer_host_us\['gpt'\]: must be >= 0"):
        load_hardware(profile_with(tmp_path, {"layer_host_us": {"gpt": -5.0}}))
    negative = {"schedule_us": {"layerwise": {"run": -1.0, "micro_batch": 1.0}}}
    with pytest.raises(ConfigError, match=r"schedule_us\['layerwise'\]\['run'\]: must be >= 0"):
        load_hardware(profile_with(tmp_path, negative))
    with pytest.raises(ConfigError, match="unknown key"):
        load_hardware(profile_with(tmp_path, {1: "a", "b": 2}))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    with pytest.raises(ConfigError) as caught:
        load_hardware(path)
    assert "hardware.j: unknown key" in str(caught.value) and len(str(caught.value)) < 10_000


def test_a_profile_name_too_long_for_the_file_system():
    data = json.loads(json.dumps(DENSE))
    data["hardware"]["profile"] = "p" * 300
    message = refused(data, "hardware.profile: no profile")
    assert "p" * 300 not in message
