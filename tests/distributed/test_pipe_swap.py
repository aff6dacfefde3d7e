"""The one-line swap on 2 gloo ranks: examples/pipeline_swap.py's model (tied embedding reused
as the LM head through forward_fn, LayerSpecs, plain functions) trained with stock DeepSpeed
PipelineModule and with LayerwisePipelineModule. DeepSpeed's own methods place layers alike and
train to the same losses; explicit boundaries equal to a stock placement train alike; 'profile'
and 'layerwise' place every layer kind and train; tied weights stay equal across stages."""

import json

import pytest

from .conftest import launch, torchrun

RANKS = 2


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("swap")
    done = launch(
        torchrun(RANKS, 29661), "tests/distributed/pipe_swap_worker.py", "--out", str(out)
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(RANKS)]


@pytest.mark.parametrize("method", ["parameters", "uniform", "type:Linear"])
def test_deepspeeds_methods_place_and_train_as_stock(ranks, method):
    for rank in ranks:
        stock, ours = rank[f"stock/{method}"], rank[f"layerwise/{method}"]
        assert ours["parts"] == stock["parts"]
        assert ours["losses"] == stock["losses"] and ours["eval_loss"] == stock["eval_loss"]
        assert ours["tied_weight"] == stock["tied_weight"]


def test_explicit_boundaries_train_as_stock_on_the_same_placement(ranks):
    for rank in ranks:
        stock, ours = rank["stock/uniform"], rank["layerwise/boundaries"]
        assert ours["parts"] == stock["parts"] and ours["losses"] == stock["losses"]


@pytest.mark.parametrize("name", ["layerwise/profile", "layerwise/layerwise", "stock/parameters"])
def test_tied_weights_stay_equal_across_stages_and_training_moves_them(ranks, name):
    first, last = (rank[name] for rank in ranks)
    assert first["parts"] == last["parts"] and len(first["parts"]) == RANKS + 1
    assert first["tied_weight"] == last["tied_weight"]  # both stages hold the embedding
    assert first["losses"] == last["losses"]
    assert all(loss == loss for loss in first["losses"])  # finite, not NaN
    assert first["tied_weight_start"] == last["tied_weight_start"]  # DeepSpeed syncs at start
    assert first["tied_weight"] != first["tied_weight_start"]  # and training moved them


def test_profile_and_layerwise_give_every_stage_layers_with_parameters(ranks):
    for name in ("layerwise/profile", "layerwise/layerwise"):
        parts = ranks[0][name]["parts"]
        assert parts[0] == 0 and parts[-1] == 7 and 0 < parts[1] < 7
