"""4 gloo ranks, launched once for the module: pipelines equal the one-process reference, each
rank builds exactly its planned layers, and 'profile' beats DeepSpeed's count-based methods."""

import json

import pytest

from layerwise.partition import Link, PartitionProblem, stage_costs

from .conftest import launch, torchrun

RANKS = 4


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("worker")
    done = launch(torchrun(RANKS, 29631), "tests/distributed/worker.py", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(RANKS)]


PIPELINES = [
    "mock_dense_layerwise/stages=4",
    "mock_dense_layerwise/stages=2",
    "mock_gpt_layerwise/stages=4",
    "mock_gpt_layerwise/stages=2",
]


@pytest.mark.parametrize("key", PIPELINES)
def test_pipeline_equals_single_process_reference(ranks, key):
    stages = int(key.split("=")[1])
    last_ranks = [replica * stages + stages - 1 for replica in range(RANKS // stages)]
    for rank in last_ranks:
        entry = ranks[rank]["pipelines"][key]
        assert entry["outputs"] >= 1 and entry["scale"] > 0.1
        assert entry["max_abs_error"] <= 1e-5 * entry["scale"], (rank, entry)
    assert all(
        "max_abs_error" not in ranks[r]["pipelines"][key]
        for r in range(RANKS)
        if r not in last_ranks
    )


@pytest.mark.parametrize("key", PIPELINES)
def test_each_rank_builds_exactly_its_planned_layers(ranks, key):
    layers_seen = []
    for rank in range(RANKS):
        entry = ranks[rank]["pipelines"][key]
        first, stop = entry["planned"]
        assert entry["built"] == list(range(first, stop))
        layers_seen += entry["built"]
    replicas = RANKS // int(key.split("=")[1])
    assert sorted(layers_seen) == sorted(list(range(8)) * replicas)


def test_profile_places_uneven_layers_better_than_parameters_and_uniform(ranks):
    from deepspeed.runtime.utils import partition_balanced, partition_uniform

    profile = ranks[0]["profile"]
    assert all(r["profile"]["boundaries"] == profile["boundaries"] for r in ranks)
    seconds = profile["seconds"]
    layers = len(seconds)
    problem = PartitionProblem(
        tuple(seconds),
        (0.0,) * (layers + 1),
        (0.0,) * layers,
        (Link(0.0, 1.0),) * (RANKS - 1),
        (float("inf"),) * RANKS,
    )

    def bottleneck(bounds):
        return max(stage_costs(problem, tuple(int(b) for b in bounds)))

    ours = bottleneck(profile["boundaries"])
    by_parameters = bottleneck(partition_balanced(profile["parameters"], RANKS))
    by_count = bottleneck(partition_uniform(layers, RANKS))
    print(
        f"profiled bottleneck: ours {ours * 1e3:.3f} ms, 'parameters' "
        f"{by_parameters * 1e3:.3f} ms, 'uniform' {by_count * 1e3:.3f} ms"
    )
    # The two 60-matmul layers are ~60x the others: ours never puts them on one stage.
    assert profile["boundaries"][:2] == [0, 1]
    assert ours * 1.5 < by_parameters and ours * 1.5 < by_count
    for rank, entry in enumerate(ranks):
        first, stop = profile["boundaries"][rank], profile["boundaries"][rank + 1]
        assert entry["profile"]["built"] == list(range(first, stop))
