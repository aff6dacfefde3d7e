"""Plans the planner tests share: a hand-computable config, the seed with L2 priced, Llama
configs and the shipped mocks on a changed cpu-mock profile."""

import json
import textwrap

import yaml

from layerwise.config.load import load_config, parse_config
from layerwise.planner.plan import make_plan
from layerwise.planner.records import Layout, Plan
from tests.conftest import CONFIGS, PROFILES

ROUND_NUMBERS = textwrap.dedent("""\
    name: round
    description: round numbers for hand-computed plans
    peak_tflops: 1.0
    gemm_tflops: {"1000x1000": {1: 1.0}}
    gemm_floor_us: 0.0
    kernel_floor_us: 0.0
    attention_tflops: 1.0
    hbm_gbs: 1000.0
    hbm_datasheet_gbs: 1000.0
    hbm_capacity_gib: 1.0
    reserved_gib: 0.0
    l2_mib: 0.0
    l2_gbs: 1000.0
    gpus_per_node: 4
    intra_node: {p2p_latency_us: 0.0, p2p_gbs: 1.0, allreduce_latency_us: 0.0,
                 allreduce_busbw_gbs: 1.0}
    inter_node: {p2p_latency_us: 0.0, p2p_gbs: 1.0, allreduce_latency_us: 0.0,
                 allreduce_busbw_gbs: 1.0}
    """)


def round_plan(tmp_path) -> Plan:
    """A 4-layer dense model on 4 GPUs of round numbers, every figure computable by hand."""
    (tmp_path / "round.yaml").write_text(ROUND_NUMBERS)
    data = {
        "mode": "layerwise",
        "model": {"kind": "dense", "num_layers": 4, "hidden": 1000},
        "hardware": {"profile": "round.yaml", "gpus": 4},
        "workload": {"batch_size": 4, "seq_len": 1000, "decode_steps": 1},
        "baseline": {"tensor_parallel": 2, "pipeline_parallel": 2, "micro_batches": 4},
        "layerwise": {"micro_batches": 4, "replicas": 1},
    }
    (tmp_path / "run.json").write_text(json.dumps(data))
    return make_plan(load_config(tmp_path / "run.json"))


def with_l2(seed_data, tmp_path, l2_gbs: float) -> dict:
    """The seed config on the h200 profile with `l2_gbs` (0: not measured, not priced) and
    1 us kernel floors (as CUDA graphs measure them), so an 8 MiB weight's read shows."""
    profile = yaml.safe_load((PROFILES / "h200.yaml").read_text())
    profile.update(l2_gbs=l2_gbs, gemm_floor_us=1.0, kernel_floor_us=1.0)
    (tmp_path / "l2.yaml").write_text(yaml.safe_dump(profile))
    seed_data["hardware"]["profile"] = str(tmp_path / "l2.yaml")
    seed_data["model"] = {"kind": "dense", "num_layers": 16, "hidden": 2048}  # 8 MiB a layer
    seed_data["layerwise"]["replicas"] = 1  # a layer per stage
    return seed_data


def llama_data(model: str, gpus: int, tp: int, pp: int, profile: str = "h200") -> dict:
    """A baseline config of a preset model on `gpus` GPUs, TP `tp` x PP `pp`, one pipeline."""
    return {
        "mode": "baseline",
        "model": model,
        "hardware": {"profile": profile, "gpus": gpus},
        "workload": {"batch_size": 8, "seq_len": 1024, "decode_steps": 16},
        "baseline": {"tensor_parallel": tp, "pipeline_parallel": pp},
        "layerwise": {"replicas": 1},
    }


def mock_plan(
    tmp_path, stem: str, replicas: int = 1, decode_micro_batches="auto", **profile_changes
) -> Layout:
    """A shipped mock config (with `replicas`, `decode_micro_batches`) planned on cpu-mock with
    `profile_changes`."""
    profile = yaml.safe_load((PROFILES / "cpu-mock.yaml").read_text())
    profile.update(profile_changes)
    path = tmp_path / f"profile{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(profile))
    data = json.loads((CONFIGS / f"{stem}.json").read_text())
    data["hardware"]["profile"] = str(path)
    data["layerwise"].update(replicas=replicas, decode_micro_batches=decode_micro_batches)
    config = parse_config(data, stem, CONFIGS)
    return getattr(make_plan(config), config.mode)
