"""The runner base class: where the KV cache starts, how decode steps stream, and how outputs
are cut back into steps, seen through a fake runner that records its calls."""

import dataclasses

import pytest
import torch

from layerwise.planner.assignment import RankAssignment
from layerwise.runtime.runners.base import Runner, build_runner

SEQ_LEN, MICRO_BATCHES, DECODE_MICRO_BATCHES = 32, 3, 2

ASSIGNMENT = RankAssignment(
    rank=0,
    replica=0,
    stage=0,
    tensor_rank=0,
    first_layer=0,
    stop_layer=8,
    is_first_stage=True,
    is_last_stage=True,
    sequences=4,
    first_sequence=0,
    micro_batches=MICRO_BATCHES,
    micro_batch_rows=1,
    chunk_tokens=SEQ_LEN,
    decode_micro_batches=DECODE_MICRO_BATCHES,
    decode_rows=2,
    decode_streamed=True,
    seq_len=SEQ_LEN,
    decode_steps=3,
    cache_length=SEQ_LEN + 3,
    dtype="fp32",
    seed=1,
)


Log = list  # every cache start and engine run, in order


class FakeCache:
    def __init__(self, log: Log):
        self.log = log

    def start(self, position: int, micro_batches: int) -> None:
        self.log.append(("start", position, micro_batches))


class FakeRunner(Runner):
    """Runs micro-batches by adding 100 to each input; on a rank that reads no input, the
    outputs are 0, 1, ... (what a last stage would receive); None off the last stage."""

    def __init__(self, assignment: RankAssignment, log: Log, cache: bool = True):
        super().__init__(assignment, FakeCache(log) if cache else None)
        self.log = log

    def run_micro_batches(self, inputs, count, phase):
        values = None if inputs is None else [float(item) for item in inputs]
        self.log.append(("run", values, count, phase))
        if not self.assignment.is_last_stage:
            return None
        if inputs is None:
            return [torch.tensor(float(k)) for k in range(count)]
        return [item + 100 for item in inputs]


def runner(log: Log, **changes) -> FakeRunner:
    return FakeRunner(dataclasses.replace(ASSIGNMENT, **changes), log)


def steps_of(count: int) -> list[list[torch.Tensor]]:
    """`count` decode steps of DECODE_MICRO_BATCHES inputs each: step s holds 10 s, 10 s + 1."""
    return [
        [torch.tensor(10.0 * step + k) for k in range(DECODE_MICRO_BATCHES)]
        for step in range(count)
    ]


def values(nested) -> list:
    return [[float(item) for item in step] for step in nested]


def test_prefill_starts_the_cache_at_zero_then_runs_every_chunk_once():
    log = Log()
    chunks = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)]
    outputs = runner(log).prefill(chunks)
    assert log == [("start", 0, MICRO_BATCHES), ("run", [1.0, 2.0, 3.0], MICRO_BATCHES, "prefill")]
    assert [float(output) for output in outputs] == [101.0, 102.0, 103.0]


def test_streamed_decode_is_one_run_of_every_step_from_the_prompts_end():
    log = Log()
    outputs = runner(log, decode_streamed=True).decode(steps_of(3))
    assert log == [
        ("start", SEQ_LEN, DECODE_MICRO_BATCHES),
        ("run", [0.0, 1.0, 10.0, 11.0, 20.0, 21.0], 3 * DECODE_MICRO_BATCHES, "decode"),
    ]
    assert values(outputs) == [[100.0, 101.0], [110.0, 111.0], [120.0, 121.0]]


def test_unstreamed_decode_runs_each_step_from_its_own_position():
    log = Log()
    outputs = runner(log, decode_streamed=False).decode(steps_of(3))
    assert log == [
        ("start", SEQ_LEN, DECODE_MICRO_BATCHES),
        ("run", [0.0, 1.0], DECODE_MICRO_BATCHES, "decode"),
        ("start", SEQ_LEN + 1, DECODE_MICRO_BATCHES),
        ("run", [10.0, 11.0], DECODE_MICRO_BATCHES, "decode"),
        ("start", SEQ_LEN + 2, DECODE_MICRO_BATCHES),
        ("run", [20.0, 21.0], DECODE_MICRO_BATCHES, "decode"),
    ]
    assert values(outputs) == [[100.0, 101.0], [110.0, 111.0], [120.0, 121.0]]


@pytest.mark.parametrize("streamed", [True, False])
def test_a_last_stage_that_reads_no_input_gets_its_outputs_cut_into_steps(streamed):
    log = Log()
    found = runner(log, is_first_stage=False, decode_streamed=streamed).decode([None] * 3)
    runs = [entry for entry in log if entry[0] == "run"]
    assert all(inputs is None for _, inputs, _, _ in runs)
    assert [count for _, _, count, _ in runs] == (
        [3 * DECODE_MICRO_BATCHES] if streamed else [DECODE_MICRO_BATCHES] * 3
    )
    expected = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]] if streamed else [[0.0, 1.0]] * 3
    assert values(found) == expected


@pytest.mark.parametrize("streamed", [True, False])
def test_off_the_last_stage_there_are_no_outputs(streamed):
    log = Log()
    part = runner(log, is_last_stage=False, decode_streamed=streamed)
    assert part.prefill([torch.tensor(1.0)] * MICRO_BATCHES) is None
    assert part.decode(steps_of(2)) is None
    assert len([entry for entry in log if entry[0] == "run"]) == (2 if streamed else 3)


def test_without_a_cache_the_runs_are_the_same():
    log = Log()
    part = FakeRunner(dataclasses.replace(ASSIGNMENT, decode_streamed=False), log, cache=False)
    assert values(part.decode(steps_of(2))) == [[100.0, 101.0], [110.0, 111.0]]
    assert [entry[0] for entry in log] == ["run", "run"]


def test_a_runner_must_run_micro_batches():
    class Incomplete(Runner):
        pass

    with pytest.raises(TypeError, match="run_micro_batches"):
        Incomplete(ASSIGNMENT, None)


def test_build_runner_picks_the_class_by_mode(groups, monkeypatch):
    from layerwise.runtime.runners import deepspeed_pipe, megatron_tp_pp

    def recorder(name):
        return lambda config, layout, assignment, device: (name, assignment, device)

    monkeypatch.setattr(megatron_tp_pp, "MegatronTPxPP", recorder("megatron"))
    monkeypatch.setattr(deepspeed_pipe, "LayerwisePipeline", recorder("deepspeed"))
    cpu = torch.device("cpu")
    for mode, name in (("baseline", "megatron"), ("layerwise", "deepspeed")):
        layout = type("Layout", (), {"mode": mode})()
        assert build_runner(None, layout, ASSIGNMENT, cpu) == (name, ASSIGNMENT, cpu)
