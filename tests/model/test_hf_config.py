"""A Hugging Face config.json as the model: exact mapping, overrides, and every refusal named."""

import copy
import dataclasses
import json
import subprocess
import sys

import pytest

from layerwise.config.load import load_config, parse_config
from layerwise.errors import ConfigError
from layerwise.model.spec import MODEL_PRESETS
from tests.conftest import CONFIGS, ROOT

LLAMA_8B = json.loads((CONFIGS / "hf/llama-3.1-8b.json").read_text())
MOCK_LLAMA = json.loads((CONFIGS / "hf/mock-llama/config.json").read_text())
QWEN2 = {  # the shape of Qwen/Qwen2.5-0.5B's config.json
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 896,
    "initializer_range": 0.02,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "max_window_layers": 24,
    "model_type": "qwen2",
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.40.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
MISTRAL_V03 = {  # mistralai/Mistral-7B-v0.3's config.json
    "architectures": ["MistralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.42.0.dev0",
    "use_cache": True,
    "vocab_size": 32768,
}


def run_config(model: dict) -> dict:
    """The mock Llama run config with `model` as its model section."""
    data = json.loads((CONFIGS / "mock_llama_hf.json").read_text())
    data["model"] = model
    return data


def model_from(tmp_path, hf: dict, **overrides):
    """The ModelSpec parsed from `hf` written as tmp_path/<name>/config.json."""
    folder = tmp_path / overrides.pop("folder", "Some-Model")
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf))
    model = {"hf_config": f"{folder.name}/config.json", **overrides}
    return parse_config(run_config(model), "run.json", tmp_path).model


def problems_from(tmp_path, hf: dict, **overrides) -> str:
    """The ConfigError message for `hf` as the model."""
    with pytest.raises(ConfigError) as error:
        model_from(tmp_path, hf, **overrides)
    return str(error.value)


def test_llama_3_1_8b_config_is_the_preset():
    model = parse_config(run_config({"hf_config": "hf/llama-3.1-8b.json"}), "r", CONFIGS).model
    assert model == dataclasses.replace(MODEL_PRESETS["llama-3.1-8b"], name=model.name)
    assert model.name == "llama-3.1-8b"  # the file's stem when it is not a config.json


def test_mock_llama_config_is_the_mock_preset_named_after_its_folder():
    assert load_config(CONFIGS / "mock_llama_hf.json").model == MODEL_PRESETS["mock-llama"]


def test_overrides_apply_and_mark_the_name(tmp_path):
    model = model_from(tmp_path, LLAMA_8B, num_layers=4)
    preset = MODEL_PRESETS["llama-3.1-8b"]
    assert model == dataclasses.replace(preset, num_layers=4, name="Some-Model-custom")
    assert model_from(tmp_path, LLAMA_8B, num_layers=4, name="mine").name == "mine"


def test_absolute_path(tmp_path):
    path = CONFIGS / "hf/mock-llama/config.json"
    model = parse_config(run_config({"hf_config": str(path)}), "r", tmp_path).model
    assert model == MODEL_PRESETS["mock-llama"]


def test_qwen2_has_qkv_biases_and_its_disabled_window_is_full_attention(tmp_path):
    model = model_from(tmp_path, QWEN2, num_layers=6)
    assert (model.qkv_bias, model.bias, model.tied_embeddings) == (True, False, True)
    assert (model.heads, model.head_dim, model.query_groups) == (14, 64, 2)
    assert (model.rope_base, model.norm_eps, model.rope_llama3_factor) == (1e6, 1e-6, 0.0)


def test_mistral_v0_3_is_the_preset(tmp_path):
    model = model_from(tmp_path, MISTRAL_V03)
    assert model == dataclasses.replace(MODEL_PRESETS["mistral-7b"], name="Some-Model")


def test_llama_with_biases_everywhere(tmp_path):
    hf = LLAMA_8B | {"attention_bias": True, "mlp_bias": True}
    assert model_from(tmp_path, hf).bias


def test_missing_optional_keys_take_transformers_defaults(tmp_path):
    hf = {k: v for k, v in LLAMA_8B.items() if k not in ("num_key_value_heads", "rope_theta")}
    model = model_from(tmp_path, hf | {"rope_scaling": None})
    assert (model.query_groups, model.rope_base) == (32, 10000.0)  # MHA, LlamaConfig's theta


SLIDING = "sliding-window attention is not supported"


@pytest.mark.parametrize(
    "hf,expected",
    [
        (LLAMA_8B | {"num_local_experts": 8}, "num_local_experts = 8: mixture of experts"),
        (QWEN2 | {"num_experts": 60}, "num_experts = 60: mixture of experts"),
        (MISTRAL_V03 | {"sliding_window": 4096}, f"sliding_window = 4096: {SLIDING}"),
        (
            {k: v for k, v in MISTRAL_V03.items() if k != "sliding_window"},
            f"sliding_window = 4096 (the default when absent): {SLIDING}",
        ),
        (
            QWEN2 | {"use_sliding_window": True},
            "use_sliding_window = true: sliding-window attention (sliding_window = 32768)",
        ),
        (
            QWEN2 | {"layer_types": ["full_attention", "sliding_attention"]},
            'layer_types = ["full_attention", "sliding_attention"]: only "full_attention"',
        ),
        (
            LLAMA_8B | {"model_type": "mixtral"},
            'model_type = "mixtral": unsupported model type (supported: llama, mistral, qwen2)',
        ),
        (
            LLAMA_8B | {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
            'rope_type "yarn" is not supported',
        ),
        (
            LLAMA_8B | {"rope_scaling": LLAMA_8B["rope_scaling"] | {"low_freq_factor": 2.0}},
            "rope_scaling.low_freq_factor = 2.0: megatron-core's llama3 scaling fixes it at 1.0",
        ),
        (LLAMA_8B | {"hidden_act": "gelu"}, 'hidden_act = "gelu": only "silu"'),
        (LLAMA_8B | {"qk_layernorm": True}, "qk_layernorm = true: unknown key"),
        (
            LLAMA_8B | {"quantization_config": {"quant_method": "fp8"}},
            "quantization_config = {",
        ),
        (LLAMA_8B | {"attention_bias": True}, "attention_bias = true: biases on the attention"),
        (MISTRAL_V03 | {"attention_bias": False}, "attention_bias = false: unknown key"),
        (LLAMA_8B | {"hidden_size": "4096"}, 'hidden_size = "4096": expected an integer'),
        (LLAMA_8B | {"num_hidden_layers": 0}, "num_hidden_layers = 0: must be >= 1"),
        (LLAMA_8B | {"num_key_value_heads": 5}, "num_key_value_heads = 5: must divide"),
        (
            {k: v for k, v in LLAMA_8B.items() if k != "vocab_size"},
            "vocab_size: missing (a required key)",
        ),
    ],
)
def test_each_unsupported_or_invalid_key_is_named_with_its_value(tmp_path, hf, expected):
    message = problems_from(tmp_path, hf)
    assert f"model.hf_config ({tmp_path / 'Some-Model/config.json'}): " in message
    assert expected in message


def test_every_problem_at_once_with_the_overrides(tmp_path):
    hf = copy.deepcopy(MISTRAL_V03) | {"model_type": "mixtral", "num_local_experts": 8}
    hf |= {"hidden_act": "gelu", "sliding_window": 4096}
    message = problems_from(tmp_path, hf, colour="red")
    for expected in ("model_type", "num_local_experts", "hidden_act", "sliding_window"):
        assert f"{expected} = " in message
    assert "model.colour: unknown key" in message and "5 problems" in message


def test_preset_and_hf_config_together_are_refused(tmp_path):
    message = problems_from(tmp_path, LLAMA_8B, preset="mock-llama")
    assert 'give "preset" or "hf_config", not both' in message


@pytest.mark.parametrize(
    "contents,expected",
    [
        (None, "cannot read: No such file or directory"),
        (
            "{\n  oops",
            "not valid JSON: Expecting property name enclosed in double quotes at line 2, column 3",
        ),
        ("[1, 2]", "expected a JSON object at the top, got list"),
    ],
)
def test_unreadable_files_name_the_path(tmp_path, contents, expected):
    path = tmp_path / "config.json"
    if contents is not None:
        path.write_text(contents)
    with pytest.raises(ConfigError) as error:
        parse_config(run_config({"hf_config": "config.json"}), "run.json", tmp_path)
    assert error.value.problems == (f"model.hf_config ({path}): {expected}",)


@pytest.mark.parametrize("value", [None, 3, "", ["a.json"]])
def test_hf_config_must_be_a_path(value):
    with pytest.raises(ConfigError) as error:
        parse_config(run_config({"hf_config": value}), "run.json", CONFIGS)
    assert error.value.problems == (
        f"model.hf_config: expected a path to a config.json, got {value!r}",
    )


def plan(config) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "launch/plan.py"), "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_plan_cli_runs_a_model_from_its_config_json():
    done = plan(CONFIGS / "mock_llama_hf.json")
    assert done.returncode == 0, done.stderr
    assert "model mock-llama: 6 layers" in done.stdout


def test_plan_cli_refuses_a_bad_config_json_with_exit_2(tmp_path):
    (tmp_path / "hf.json").write_text(json.dumps(MISTRAL_V03 | {"sliding_window": 4096}))
    run = tmp_path / "run.json"
    run.write_text(json.dumps(run_config({"hf_config": "hf.json"})))
    done = plan(run)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert f"model.hf_config ({tmp_path / 'hf.json'}): sliding_window = 4096: " in done.stderr
