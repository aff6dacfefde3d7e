"""Inputs are a function of (seed, sequence) alone: any chunking of a replica's batch, and any
replica split, sees the same token rows."""

import copy
import json

import pytest
import torch

from layerwise.config.load import parse_config
from layerwise.planner.assignment import assign
from layerwise.planner.plan import make_plan
from layerwise.runtime.inputs import decode_tokens, prefill_chunks, token_rows

from ..conftest import CONFIGS

CPU = torch.device("cpu")


def layout_of(name: str, **layerwise):
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    data["layerwise"].update(layerwise)
    config = parse_config(copy.deepcopy(data), name, CONFIGS)
    return config, make_plan(config).layout(config.mode)


def first_stage_of(config, layout, replica=0):
    """The assignment of the rank that reads `replica`'s inputs."""
    return assign(config, layout, layout.grid.rank(data=replica))


def batch_rows(config, layout, replica=0):
    chunks = prefill_chunks(config.model, first_stage_of(config, layout, replica), CPU)
    assert len(chunks) == layout.micro_batches
    return torch.cat([token_rows(chunk, config.model.kind) for chunk in chunks])


@pytest.mark.parametrize("model", ["mock_dense", "mock_gpt"])
def test_any_chunking_sees_the_same_batch(model):
    config, one = layout_of(f"{model}_layerwise", micro_batches=1)
    _, many = layout_of(f"{model}_layerwise", micro_batches=8 if model == "mock_gpt" else 32)
    assert one.micro_batches == 1 and many.micro_batches > 1
    whole = batch_rows(config, one)
    assert whole.shape == (config.workload.prefill_tokens, config.model.hidden)
    assert torch.equal(whole, batch_rows(config, many))
    assert whole.std() > 0.5  # drawn values, not a constant


def test_dense_chunks_may_cut_sequences():
    """Chunks of 16 tokens cut each 32-token sequence in two: still the same rows."""
    config, whole = layout_of("mock_dense_layerwise", micro_batches=1)
    _, cut = layout_of("mock_dense_layerwise", micro_batches=16)
    assert cut.chunk_tokens == 16 and config.workload.seq_len == 32
    assert torch.equal(batch_rows(config, whole), batch_rows(config, cut))


def test_replicas_own_consecutive_sequences():
    config, one = layout_of("mock_gpt_layerwise", replicas=1, micro_batches=1)
    _, two = layout_of("mock_gpt_layerwise", replicas=2, micro_batches=1)
    whole = batch_rows(config, one)
    halves = torch.cat([batch_rows(config, two, replica) for replica in (0, 1)])
    assert torch.equal(whole, halves)


def test_gpt_chunks_are_sequence_first():
    config, layout = layout_of("mock_gpt_layerwise", micro_batches=2)
    chunk = prefill_chunks(config.model, first_stage_of(config, layout), CPU, count=1)[0]
    assert chunk.shape == (config.workload.seq_len, 4, config.model.hidden)
    rows = token_rows(chunk, "gpt")
    assert torch.equal(rows[: config.workload.seq_len], chunk[:, 0])


def test_decode_tokens_one_per_sequence_in_micro_batches():
    config, layout = layout_of("mock_dense_layerwise")
    tokens = decode_tokens(config.model, first_stage_of(config, layout), CPU)
    assert len(tokens) == layout.decode_micro_batches
    stacked = torch.cat(tokens)
    assert stacked.shape == (config.workload.batch_size, config.model.hidden)
    assert not torch.equal(stacked[0], stacked[1])
    prompts = batch_rows(config, layout)
    assert not any(torch.equal(stacked[0], row) for row in prompts)
