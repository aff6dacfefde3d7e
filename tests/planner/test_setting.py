"""The partition problem a setting poses: sizes of the embedding, blocks and head, and each
stage's room."""

import pytest

from layerwise.config.load import parse_config
from layerwise.planner.inputs import plan_inputs
from layerwise.planner.setting import problem
from tests.planner.plans import llama_data


def test_partition_problem_sizes_of_embedding_blocks_and_head():
    """Llama 3.1 8B under TP 2 x PP 4, one 1,024-token sequence per chunk, bf16."""
    from layerwise.planner.baseline import baseline_setting

    config = parse_config(llama_data("llama-3.1-8b", 8, 2, 4))
    inputs = plan_inputs(config)
    placed = problem(inputs, baseline_setting(inputs, config.baseline), 1024)
    assert len(placed.layer_costs) == 32 + 2
    sizes = placed.boundary_bytes
    assert sizes[0] == 1024 * 8  # int64 token ids into the embedding
    assert set(sizes[1:-1]) == {1024 * 4096 * 2}  # hidden states between layers
    assert sizes[-1] == 1 * 128256 * 2  # last-position logits out of the head, one sequence
    resident = placed.resident_bytes
    assert resident[0] == 128256 * 4096 / 2 * 2  # vocab-parallel embedding: half the rows
    assert resident[-1] == (128256 * 4096 + 4096) / 2 * 2  # final norm + column-parallel head
    cached = 8 * (1024 + 16)  # the batch's prompt and decode tokens
    kv = 2 * 8 * 128 / 2 * 2  # K and V of 8 heads of 128, half on each TP rank, bf16
    assert set(resident[1:-1]) == {218_112_000 / 2 * 2 + kv * cached}


def test_first_stage_holds_token_ids_and_last_stage_logits():
    """Stage room = HBM - 2 in-flight x (input + output) - workspace - the batch held. Against
    a middle stage, stage 0 receives 8-byte token ids instead of hidden states and holds the
    batch's ids; the last stage sends each sequence's last-position logits, keeps the batch's
    (8 sequences), and its workspace is the head's (normed input + logits shard, priced for
    every token: an upper bound) instead of a block's."""
    from layerwise.planner.baseline import baseline_setting

    config = parse_config(llama_data("llama-3.1-8b", 8, 2, 4))
    inputs = plan_inputs(config)
    room = problem(inputs, baseline_setting(inputs, config.baseline), 1024).capacity_bytes
    m, h, v, b = 1024, 4096, 128256, 2
    assert room[1] == room[2]
    assert room[1] - room[0] == pytest.approx(8 * 1024 * 8 + 2 * (m * 8 - m * h * b))
    block_work = m * (2 * 2048 + 2 * 512 + 3 * 7168 + h) * b  # QKV, attention out, MLP, hidden
    head_work = m * (h + v // 2) * b
    last = 8 * v * b + 2 * (1 * v * b - m * h * b) + head_work - block_work  # last-token logits
    assert room[1] - room[-1] == pytest.approx(last)
