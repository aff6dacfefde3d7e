"""--emit: a planned layout as each engine's settings, checked against the engine's own rule.
Megatron's by megatron-core itself (installed); vLLM's and SGLang's `get_pp_indices` and
TensorRT-LLM's pp_partition by their rules restated here (docs/usage.md cites the files);
DeepSpeed's by our LayerwisePipelineModule's boundary check."""

import json
from dataclasses import replace

import pytest
import torch
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.enums import LayerType
from megatron.core.transformer.pipeline_parallel_layer_layout import PipelineParallelLayerLayout

from layerwise.cli import plan as plan_cli
from layerwise.config.load import parse_config
from layerwise.planner.plan import make_plan
from layerwise.report.emit import ENGINES, Placement, emit, placement
from layerwise.runtime.pipe import check_boundaries
from tests.conftest import CONFIGS


def config_of(name: str, **sections):
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    for section, values in sections.items():
        data[section].update(values)
    return parse_config(data, "test.json", CONFIGS)


def planned(name: str, **sections):
    config = config_of(name, **sections)
    return config, make_plan(config).layout(config.mode)


def megatron_blocks(settings: dict, num_layers: int) -> list[int]:
    """Blocks per stage as megatron-core builds them from the emitted flags (its
    TransformerConfig checks, or its layout parser and validator)."""
    stages = settings["--pipeline-model-parallel-size"]
    layout = settings.get("--pipeline-model-parallel-layout")
    if layout is not None:
        parsed = PipelineParallelLayerLayout(layout, stages)
        parsed.validate_layer_layout(num_layers=num_layers, mtp_num_layers=None)
        return [sum(row.count(LayerType.decoder) for row in rows) for rows in parsed.layout]
    first = settings.get("--decoder-first-pipeline-num-layers")
    last = settings.get("--decoder-last-pipeline-num-layers")
    TransformerConfig(  # raises on counts megatron refuses
        num_layers=num_layers,
        hidden_size=64,
        num_attention_heads=4,
        pipeline_model_parallel_size=stages,
        pipeline_dtype=torch.float32,
        num_layers_in_first_pipeline_stage=first,
        num_layers_in_last_pipeline_stage=last,
    )
    if first is None:
        return [num_layers // stages] * stages
    middle = (num_layers - first - last) // (stages - 2) if stages > 2 else 0
    return [first, *[middle] * (stages - 2), last]


def get_pp_indices(partition: str, num_layers: int, pp_rank: int, pp_size: int) -> tuple:
    """vLLM's (vllm/distributed/utils.py) and SGLang's (python/sglang/srt/distributed/utils.py)
    get_pp_indices with the partition variable set: one count per rank, summing to the layers."""
    counts = [int(count) for count in partition.split(",")]
    if len(counts) != pp_size or sum(counts) != num_layers:
        raise ValueError(f"{partition} for {num_layers} layers on {pp_size} ranks")
    start = sum(counts[:pp_rank])
    return start, start + counts[pp_rank]


def engine_blocks(engine: str, settings: dict, num_layers: int) -> list[int]:
    if engine == "megatron":
        return megatron_blocks(settings, num_layers)
    if engine in ("vllm", "sglang"):
        env, size = {
            "vllm": ("VLLM_PP_LAYER_PARTITION", "--pipeline-parallel-size"),
            "sglang": ("SGLANG_PP_LAYER_PARTITION", "--pp-size"),
        }[engine]
        ranks = settings[size]
        spans = [get_pp_indices(settings[env], num_layers, r, ranks) for r in range(ranks)]
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        return [stop - start for start, stop in spans]
    if engine == "trtllm":
        counts = settings["pp_partition"]
        assert len(counts) == settings["pipeline_parallel_size"] and sum(counts) == num_layers
        return counts
    raise AssertionError(engine)


CASES = [
    # even (TP2 x PP2), uneven with first/last (llama 1 x 4: embedding and head on the ends),
    # forced splits with an empty middle stage and uneven middles (the layout string)
    ("mock_llama_baseline", {}),
    ("mock_llama_layerwise", {"layerwise": {"replicas": 1}}),
    ("mock_llama_layerwise", {"layerwise": {"replicas": 1, "stage_layers": [3, 2, 2, 1]}}),
    ("mock_llama_layerwise", {"layerwise": {"replicas": 1, "stage_layers": [2, 0, 4, 2]}}),
    ("mock_gpt_layerwise", {"layerwise": {"replicas": 1, "stage_layers": [1, 3, 2, 2]}}),
]


@pytest.mark.parametrize("name, sections", CASES)
def test_each_engine_builds_the_plans_blocks_per_stage(name, sections):
    config, layout = planned(name, **sections)
    place = placement(config.model, layout)
    assert sum(place.blocks) == config.model.num_layers
    found = emit(config.model, layout)
    for engine in ("megatron", "vllm", "sglang", "trtllm"):
        assert found[engine].expressible, found[engine].notes
        assert engine_blocks(engine, found[engine].settings, config.model.num_layers) == list(
            place.blocks
        ), engine
    deepspeed = found["deepspeed"].settings
    assert check_boundaries(
        deepspeed["boundaries"], config.model.pipeline_layers, len(layout.stages)
    )
    assert tuple(deepspeed["boundaries"]) == (0, *(s.stop_layer for s in layout.stages))


def test_uneven_splits_use_megatrons_first_last_flags_or_its_layout():
    first_last = Placement(
        tensor_parallel=1,
        pipeline_parallel=4,
        replicas=1,
        blocks=(3, 2, 2, 1),
        boundaries=(0, 4, 6, 8, 10),
        embedding_stage=0,
        head_stage=3,
    )
    settings = emit_megatron_settings(first_last)
    assert settings["--decoder-first-pipeline-num-layers"] == 3
    assert settings["--decoder-last-pipeline-num-layers"] == 1
    assert "--pipeline-model-parallel-layout" not in settings
    uneven = replace(first_last, blocks=(2, 1, 3, 2))
    assert emit_megatron_settings(uneven)["--pipeline-model-parallel-layout"] == "Et*2|t|t*3|t*2L"
    empty_first = replace(first_last, blocks=(0, 3, 3, 2))
    assert (
        emit_megatron_settings(empty_first)["--pipeline-model-parallel-layout"] == "E|t*3|t*3|t*2L"
    )
    assert megatron_blocks(emit_megatron_settings(empty_first), 8) == [0, 3, 3, 2]


def emit_megatron_settings(place: Placement) -> dict:
    from layerwise.report.emit import emit_megatron

    return emit_megatron(place).settings


def test_a_stage_before_the_embedding_cannot_be_run_by_the_serving_engines():
    config, layout = planned(
        "mock_llama_layerwise", layerwise={"replicas": 1, "stage_layers": [0, 3, 3, 2]}
    )
    place = placement(config.model, layout)
    assert (place.embedding_stage, place.head_stage) == (1, 3)
    found = emit(config.model, layout)
    for engine in ("megatron", "vllm", "sglang", "trtllm"):
        assert not found[engine].expressible
        assert any("embedding on stage 1" in note for note in found[engine].notes)
    assert found["deepspeed"].expressible  # our pipeline module runs an empty first stage


def test_replicas_are_said_to_be_separate_instances():
    config, layout = planned("mock_gpt_layerwise", layerwise={"replicas": 2})
    found = emit(config.model, layout)
    assert all(found[e].expressible for e in ENGINES)
    assert any("2 replicas: run 2 instances" in note for note in found["vllm"].notes)
    assert any("a world of 4 ranks" in note for note in found["deepspeed"].notes)


def test_plan_cli_prints_and_writes_every_engine(tmp_path, capsys):
    out = tmp_path / "plan.json"
    config = str(CONFIGS / "llama-3.1-70b_h200x16.json")
    assert plan_cli.main(["--config", config, "--emit", "all", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "on the engines' own settings:" in text and "PREDICTED" in text
    for engine in ENGINES:
        assert f"  {engine:<10}" in text
    written = json.loads(out.read_text())
    document = written["emit"]
    assert document["layout"] == "recommended" and set(ENGINES) <= set(document)
    for candidate in written["candidates"]:  # the device-only TPOT beside each
        assert 0 < candidate["tpot_device_ms"] < candidate["tpot_ms"]
    assert plan_cli.main(["--config", config, "--emit", "vllm", "--layout", "baseline"]) == 0
    text = capsys.readouterr().out
    assert "baseline TP8 x PP2 (baseline)" in text and "VLLM_PP_LAYER_PARTITION=40,40" in text
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in text and "  sglang" not in text
    assert plan_cli.main(["--config", config, "--emit", "trtllm", "--layout", "config"]) == 0
    assert "layer-wise 1 replica x 16 stages (config)" in capsys.readouterr().out
