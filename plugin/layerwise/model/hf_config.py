"""ModelSpec fields from a Hugging Face config.json (model_type llama, mistral or qwen2).

Planning a published model should not mean copying its shape by hand, and a copy that drops one
key (a sliding window, experts, a bias) plans and runs a different model. So every key of the file
is mapped, known to be harmless (ignored), or refused by name: nothing is silently ignored, and
every problem is reported at once, each naming the file, the key and its value. Pure: no torch.
"""

import json
from pathlib import Path
from typing import Any

from layerwise.config.files import InputFileError, parse_json, read_input

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
REQUIRED_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)
# Optional keys each model type reads, with the default transformers gives them when absent
# (LlamaConfig, MistralConfig, Qwen2Config). None: head_dim = hidden_size / num_attention_heads,
# num_key_value_heads = num_attention_heads, no rope_scaling, sliding window or layer_types.
COMMON_DEFAULTS: dict[str, Any] = {
    "head_dim": None,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "layer_types": None,
    "rope_scaling": None,
    "sliding_window": None,
    "tie_word_embeddings": False,
}
TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"num_key_value_heads": None, "attention_bias": False, "mlp_bias": False},
    "mistral": {"num_key_value_heads": 8, "sliding_window": 4096},
    "qwen2": {
        "num_key_value_heads": 32,
        "sliding_window": 4096,
        "use_sliding_window": False,
    },
}
# Optional keys whose null means "none" or "derive it": no window, no scaling, hidden / heads.
NULLABLE_KEYS = frozenset(
    {"head_dim", "layer_types", "num_key_value_heads", "rope_scaling", "sliding_window"}
)
# Keys that do not change what is computed at inference: token ids, the saved dtype (run.dtype
# decides), the longest position (the workload decides), initialisation, dropout (off at
# inference), Llama's pretraining_tp (the same matmul split in slices), Qwen2's max_window_layers
# (used only with a sliding window, refused below) and MoE training-only router settings.
HARMLESS_KEYS = frozenset(
    {
        "_name_or_path",
        "architectures",
        "attention_dropout",
        "bos_token_id",
        "dtype",
        "eos_token_id",
        "initializer_range",
        "max_position_embeddings",
        "max_window_layers",
        "output_router_logits",
        "pad_token_id",
        "pretraining_tp",
        "router_aux_loss_coef",
        "tokenizer_class",
        "torch_dtype",
        "transformers_version",
        "use_cache",
    }
)
# Mixture-of-experts keys across model families; any value other than null or 0 is refused.
MOE_KEYS = (
    "moe_intermediate_size",
    "n_routed_experts",
    "n_shared_experts",
    "num_experts",
    "num_experts_per_tok",
    "num_local_experts",
    "shared_expert_intermediate_size",
)
# megatron-core's RotaryEmbedding(rope_scaling=True) hard-codes these three of Llama 3.1's scaling.
LLAMA3_FIXED = {
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
JSON_TYPES = {
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "true or false": lambda v: isinstance(v, bool),
    "a string": lambda v: isinstance(v, str),
    "an object": lambda v: isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
}


def load_model_fields(value: Any, folder: Path, problems: list[str]) -> dict[str, Any] | None:
    """ModelSpec fields from the config.json that model.hf_config names; None on any problem.

    A relative path is taken from the run config's folder, as hardware profile paths are, so a
    run config and the model files beside it move together.
    """
    if not isinstance(value, str) or not value:
        problems.append(f"model.hf_config: expected a path to a config.json, got {value!r}")
        return None
    path = Path(value) if Path(value).is_absolute() else folder / value
    where = f"model.hf_config ({path})"
    config = read_json_object(path, where, problems)
    if config is None:
        return None
    before = len(problems)
    fields = model_fields(config, where, default_name(path, config), problems)
    return fields if len(problems) == before else None


def read_json_object(path: Path, where: str, problems: list[str]) -> dict[str, Any] | None:
    """The JSON object in the file at `path`, or None and a problem naming the path."""
    try:
        data = parse_json(read_input(path))
    except InputFileError as error:
        problems.append(f"{where}: {error.reason}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a JSON object at the top, got {type(data).__name__}")
        return None
    return data


def default_name(path: Path, config: dict[str, Any]) -> str:
    """The model's folder for a config.json (e.g. "Llama-3.1-8B"), else the file's stem."""
    name = path.parent.name if path.name == "config.json" else path.stem
    model_type = config.get("model_type")
    return name or (model_type if isinstance(model_type, str) else "hf-model")


def model_fields(
    config: dict[str, Any], where: str, name: str, problems: list[str]
) -> dict[str, Any]:
    """Map a parsed config.json to ModelSpec fields; every problem is appended to `problems`.

    Unsupported model types are reported and their keys still checked against the union of
    the supported types' keys, so one run names every problem of the file.
    """
    model_type = config.get("model_type")
    keys = ConfigKeys(config, _defaults(model_type), where, problems)
    if keys.read("model_type", "a string") is not None and model_type not in SUPPORTED_TYPES:
        keys.refuse(
            "model_type", f"unsupported model type (supported: {', '.join(SUPPORTED_TYPES)})"
        )
    _refuse_unsupported_keys(keys)
    return (
        {"name": name, "kind": "gpt", "gated_mlp": True, "norm": "rmsnorm", "rope": True}
        | _shape(keys)
        | _activation_and_norm(keys)
        | _biases(keys, model_type)
        | _rope(keys)
        | _attention_window(keys, model_type)
    )


def _defaults(model_type: Any) -> dict[str, Any]:
    """Optional keys of `model_type` with their defaults; all types' keys for an unknown type."""
    if isinstance(model_type, str) and model_type in TYPE_DEFAULTS:  # a list is unhashable
        return COMMON_DEFAULTS | TYPE_DEFAULTS[model_type]
    every = dict(COMMON_DEFAULTS)
    for defaults in TYPE_DEFAULTS.values():
        every |= {key: value for key, value in defaults.items() if key not in every}
    return every


class ConfigKeys:
    """Typed reads of one config.json's keys; each problem names the file, the key and its value.

    An absent optional key reads as transformers' default for the model type, and a problem
    with a default says so, since the file does not show the value that was refused.
    """

    def __init__(
        self, config: dict[str, Any], defaults: dict[str, Any], where: str, problems: list[str]
    ):
        self.config = config
        self.defaults = defaults
        self.where = where
        self.problems = problems

    def known(self) -> frozenset[str]:
        """Keys this mapping reads or knows to be harmless."""
        return frozenset(REQUIRED_KEYS) | set(self.defaults) | HARMLESS_KEYS | set(MOE_KEYS)

    def refuse(self, key: str, message: str) -> None:
        """Report `key` (its value in the file, or its default) as unsupported or invalid."""
        if key in self.config:
            shown = f"{key} = {json.dumps(self.config[key])}"
        else:
            shown = f"{key} = {json.dumps(self.defaults[key])} (the default when absent)"
        self.problems.append(f"{self.where}: {shown}: {message}")

    def read(self, key: str, expected: str) -> Any:
        """The key's value if of the `expected` JSON type (or null where allowed), else None."""
        if key not in self.config and key not in self.defaults:
            self.problems.append(f"{self.where}: {key}: missing (a required key)")
            return None
        value = self.config.get(key, self.defaults.get(key))
        if value is None and key in NULLABLE_KEYS:
            return None
        if not JSON_TYPES[expected](value):
            self.refuse(key, f"expected {expected}")
            return None
        return value

    def positive(self, key: str) -> int | None:
        """An integer >= 1 (or null where allowed), else None and a problem."""
        value = self.read(key, "an integer")
        if value is not None and value < 1:
            self.refuse(key, "must be >= 1")
            return None
        return value


def _refuse_unsupported_keys(keys: ConfigKeys) -> None:
    """Experts, quantized weights and keys this mapping does not know are refused by name."""
    for key in MOE_KEYS:
        if keys.config.get(key) not in (None, 0):
            keys.refuse(key, "mixture of experts is not supported")
    if keys.config.get("quantization_config") is not None:
        keys.refuse("quantization_config", "quantized weights are not supported")
    for key in sorted(set(keys.config) - keys.known() - {"quantization_config"}):
        keys.refuse(
            key,
            "unknown key: it may change the computation, so it is refused "
            "(remove it if it does not)",
        )


def _shape(keys: ConfigKeys) -> dict[str, Any]:
    """Layers, widths, heads and vocabulary; head_dim from hidden / heads when absent."""
    hidden = keys.positive("hidden_size")
    heads = keys.positive("num_attention_heads")
    kv_heads = keys.positive("num_key_value_heads") or heads
    head_dim = keys.positive("head_dim")
    if head_dim is None and keys.config.get("head_dim") is None and hidden and heads:
        if hidden % heads:
            keys.refuse(
                "hidden_size",
                f"not a multiple of num_attention_heads = {heads}, and head_dim is not given",
            )
        head_dim = hidden // heads
    if heads and kv_heads and heads % kv_heads:
        keys.refuse("num_key_value_heads", f"must divide num_attention_heads = {heads}")
    return {
        "num_layers": keys.positive("num_hidden_layers"),
        "hidden": hidden,
        "heads": heads,
        "head_dim": head_dim,
        "ffn_hidden": keys.positive("intermediate_size"),
        "query_groups": kv_heads,
        "vocab_size": keys.positive("vocab_size"),
        "tied_embeddings": keys.read("tie_word_embeddings", "true or false"),
    }


def _activation_and_norm(keys: ConfigKeys) -> dict[str, Any]:
    """SwiGLU (silu) MLPs and RMSNorm's epsilon: the only activation ModelSpec's gated MLP has."""
    act = keys.read("hidden_act", "a string")
    if act is not None and act != "silu":
        keys.refuse("hidden_act", 'only "silu" (a SwiGLU MLP) is supported')
    eps = keys.read("rms_norm_eps", "a number")
    if eps is not None and not eps >= 0:
        keys.refuse("rms_norm_eps", "must be >= 0")
    return {"norm_eps": float(eps) if eps is not None else None}


def _biases(keys: ConfigKeys, model_type: Any) -> dict[str, Any]:
    """Qwen2: biases on Q, K and V only. Llama: all attention projections and/or the MLP's.

    ModelSpec has biases on every linear (`bias`) or on QKV only (`qkv_bias`), so Llama's
    attention_bias (which includes o_proj) and mlp_bias must be both true or both false.
    """
    if model_type == "qwen2":
        return {"bias": False, "qkv_bias": True}
    if model_type != "llama":
        return {"bias": False, "qkv_bias": False}
    attention = keys.read("attention_bias", "true or false")
    mlp = keys.read("mlp_bias", "true or false")
    if attention is not None and mlp is not None and attention != mlp:
        which = "attention_bias" if attention else "mlp_bias"
        keys.refuse(
            which,
            "biases on the attention projections without the MLP's, or the reverse, are not "
            "supported (only both or neither)",
        )
    return {"bias": bool(attention and mlp), "qkv_bias": False}


def _rope(keys: ConfigKeys) -> dict[str, Any]:
    """rope_theta, and Llama 3.1's frequency scaling factor when rope_scaling is llama3."""
    theta = keys.read("rope_theta", "a number")
    if theta is not None and not theta > 0:
        keys.refuse("rope_theta", "must be > 0")
        theta = None
    scaling = keys.read("rope_scaling", "an object")
    factor = 0.0 if scaling is None else _llama3_factor(keys, scaling)
    return {
        "rope_base": float(theta) if theta is not None else None,
        "rope_llama3_factor": factor,
    }


def _llama3_factor(keys: ConfigKeys, scaling: dict[str, Any]) -> float | None:
    """The factor of a llama3 rope_scaling whose other numbers are those megatron-core fixes."""
    rope_type = scaling.get("rope_type", scaling.get("type"))
    if rope_type == "default" and set(scaling) <= {"rope_type", "type"}:
        return 0.0
    if rope_type != "llama3":
        keys.refuse(
            "rope_scaling",
            f"rope_type {json.dumps(rope_type)} is not supported (supported: null, or llama3 "
            "with low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192)",
        )
        return None
    before = len(keys.problems)
    known = {"rope_type", "type", "factor", *LLAMA3_FIXED}
    for key in sorted(set(scaling) - known):
        _refuse_scaling(keys, scaling, key, "unknown key of a llama3 rope_scaling")
    for key, fixed in LLAMA3_FIXED.items():
        if key not in scaling:
            keys.problems.append(f"{keys.where}: rope_scaling.{key}: missing (llama3 needs it)")
        elif not JSON_TYPES["a number"](scaling[key]) or scaling[key] != fixed:
            message = f"megatron-core's llama3 scaling fixes it at {fixed}"
            _refuse_scaling(keys, scaling, key, message)
    factor = scaling.get("factor")
    if not JSON_TYPES["a number"](factor) or not factor > 0:
        _refuse_scaling(keys, scaling, "factor", "expected a number > 0")
    return float(factor) if len(keys.problems) == before else None


def _refuse_scaling(keys: ConfigKeys, scaling: dict[str, Any], key: str, message: str) -> None:
    """Report one key inside rope_scaling, with its value."""
    shown = json.dumps(scaling[key]) if key in scaling else "missing"
    keys.problems.append(f"{keys.where}: rope_scaling.{key} = {shown}: {message}")


def _attention_window(keys: ConfigKeys, model_type: Any) -> dict[str, Any]:
    """Full causal attention only: a sliding window (Mistral v0.1, Qwen2 with it on) is refused.

    Qwen2 files carry sliding_window even when use_sliding_window is false, which is full
    attention; newer ones also list layer_types, which must all be "full_attention".
    """
    window = keys.read("sliding_window", "an integer")
    on = model_type != "qwen2" or keys.read("use_sliding_window", "true or false")
    if window is not None and on and model_type == "qwen2":
        message = f"sliding-window attention (sliding_window = {window}) is not supported"
        keys.refuse("use_sliding_window", message)
    elif window is not None and on:
        keys.refuse("sliding_window", "sliding-window attention is not supported")
    layer_types = keys.read("layer_types", "a list")
    if layer_types is not None and any(kind != "full_attention" for kind in layer_types):
        keys.refuse("layer_types", 'only "full_attention" layers are supported')
    return {}
