"""Partition arguments and verification, without a pipeline."""

import pytest
import torch

from layerwise.runtime.pipe import check_boundaries, empty_stages, layer_parameters, profile_layers
from layerwise.runtime.verify import Verdict, compare, greedy_match


def test_boundaries_are_checked_with_the_numbers():
    assert check_boundaries([0, 3, 3, 8], 8, 3) == (0, 3, 3, 8)
    for bad in ([0, 3, 8], [1, 3, 5, 8], [0, 5, 3, 8], [0, 3, 5, 7]):
        with pytest.raises(ValueError, match="must be 4 non-decreasing layer indices from 0 to 8"):
            check_boundaries(bad, 8, 3)


def test_compare_reports_relative_error_and_fails_above_tolerance():
    expected = [torch.tensor([1.0, -4.0])]
    assert compare([torch.tensor([1.0, -4.0])], expected) == (0.0, 0.0)
    assert compare([torch.tensor([1.0, -3.0])], expected) == (1.0, 0.25)
    assert Verdict(1, 0.0, 0.0, 1e-4).ok and not Verdict(1, 1.0, 0.25, 1e-4).ok


def test_greedy_tokens_agree_wherever_the_error_cannot_flip_them():
    reference = [torch.tensor([[0.1, 0.9, 0.0], [0.50, 0.49, 0.1]])]  # row 1: a near-tie
    swapped_tie = [torch.tensor([[0.1, 0.9, 0.0], [0.49, 0.50, 0.1]])]
    assert greedy_match(swapped_tie, reference, error=0.01) == (True, 1, 2)
    assert greedy_match(swapped_tie, reference, error=0.001) == (False, 2, 2)
    flipped = [torch.tensor([[0.9, 0.1, 0.0], [0.50, 0.49, 0.1]])]
    assert greedy_match(flipped, reference, error=0.01) == (False, 1, 2)
    assert not Verdict(1, 0.0, 0.0, 1e-4, greedy_match=False).ok


def test_profile_measures_bytes_and_time_layer_by_layer(groups):
    layers = [torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)]
    found = profile_layers(layers, torch.zeros(32, 8), repeats=2)
    assert found.boundary_bytes == (32 * 8 * 4, 32 * 16 * 4, 32 * 4 * 4)
    assert found.resident_bytes == ((8 * 16 + 16) * 4, (16 * 4 + 4) * 4)
    assert len(found.seconds) == 2 and all(s > 0 for s in found.seconds)


def test_deepspeed_internals_the_partition_hook_relies_on():
    """compat.deepspeed_internals overrides PipelineModule._partition_layers(method) and calls
    _set_bounds(start, stop): DeepSpeed has no public hook. Pinned here, so an upgrade that
    changes them fails this test instead of placing layers wrongly."""
    import inspect

    import deepspeed
    from deepspeed.pipe import PipelineModule

    assert deepspeed.__version__.startswith("0.19.")
    assert list(inspect.signature(PipelineModule._partition_layers).parameters) == [
        "self",
        "method",
    ]
    assert list(inspect.signature(PipelineModule._set_bounds).parameters) == [
        "self",
        "start",
        "stop",
    ]
    source = inspect.getsource(PipelineModule.__init__)
    assert "self._partition_layers(method=partition_method)" in source
    assert source.index("self._partition_layers(") < source.index("self._build()")


def test_constructor_takes_everything_pipeline_module_takes_in_the_same_order():
    """The one-line swap: every PipelineModule parameter, same position, kind and default; ours
    come after, keyword-only."""
    import inspect

    from deepspeed.pipe import PipelineModule

    from layerwise.runtime.pipe import LayerwisePipelineModule

    theirs = list(inspect.signature(PipelineModule.__init__).parameters.values())
    ours = list(inspect.signature(LayerwisePipelineModule.__init__).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours[: len(theirs)]] == [
        (p.name, p.kind, p.default) for p in theirs
    ]
    extra = ours[len(theirs) :]
    assert {p.name for p in extra} == {
        "boundaries",
        "probe",
        "layer_costs",
        "link",
        "capacity_bytes",
        "training",
    }
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)


class Doubled(torch.nn.Module):
    """A tied module: the embedding, reused as the output projection through forward_fn."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(10, 8))

    def forward(self, ids):
        return self.weight[ids]


def mixed_layers():
    from deepspeed.pipe import LayerSpec, TiedLayerSpec

    return [
        TiedLayerSpec("embed", Doubled),
        LayerSpec(torch.nn.Linear, 8, 16),
        torch.tanh,
        torch.nn.Linear(16, 8),
        lambda hidden: hidden * 0.5,
        TiedLayerSpec("embed", Doubled, forward_fn=lambda module, hidden: hidden @ module.weight.T),
    ]


def test_profile_times_every_layer_kind_and_counts_their_bytes(groups):
    """Modules, LayerSpecs, TiedLayerSpecs (the second through forward_fn, on float input) and
    plain functions: each timed; functions hold no bytes; each tied occurrence holds the
    module's bytes (its stage keeps a copy)."""
    ids = torch.randint(10, (4, 3))
    found = profile_layers(mixed_layers(), ids, repeats=2)
    tokens = 4 * 3
    assert found.boundary_bytes == (
        tokens * 8,  # int64 ids
        tokens * 8 * 4,
        tokens * 16 * 4,
        tokens * 16 * 4,
        tokens * 8 * 4,
        tokens * 8 * 4,
        tokens * 10 * 4,  # logits through the tied weight
    )
    embed, first, second = 10 * 8 * 4, (8 * 16 + 16) * 4, (16 * 8 + 8) * 4
    assert found.resident_bytes == (embed, first, 0.0, second, 0.0, embed)
    assert found.parameters == (80, 8 * 16 + 16, 0, 16 * 8 + 8, 0, 80)
    assert len(found.seconds) == 6 and all(s > 0 for s in found.seconds)


def test_layer_parameters_as_deepspeeds_parameters_method_counts_them():
    counts, sizes = layer_parameters(mixed_layers())
    assert counts == (80, 144, 0, 136, 0, 80)
    assert sizes == tuple(4.0 * count for count in counts)


def test_stages_without_trainable_parameters_are_found():
    parameters = (80, 144, 0, 0, 136)
    assert empty_stages(parameters, (0, 2, 4, 5)) == [1]
    assert empty_stages(parameters, (0, 2, 2, 5)) == [1]  # no layers at all
    assert empty_stages(parameters, (0, 1, 3, 5)) == []


def one_rank_pipeline(groups, monkeypatch, layers, **kwargs):
    import deepspeed

    from layerwise.runtime.pipe import LayerwisePipelineModule

    monkeypatch.setenv("LOCAL_RANK", "0")
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    return LayerwisePipelineModule(layers, 1, **kwargs)


def test_training_refuses_a_stage_without_parameters_inference_allows_it(groups, monkeypatch):
    layers = [torch.tanh, lambda hidden: hidden + 1]
    with pytest.raises(ValueError, match="stage\\(s\\) 0 \\(layers 0-1\\) of boundaries"):
        one_rank_pipeline(groups, monkeypatch, layers, partition_method="layerwise")
    module = one_rank_pipeline(
        groups, monkeypatch, layers, partition_method="layerwise", training=False
    )
    assert module.parts == [0, 2]


def test_argument_conflicts_are_refused(groups, monkeypatch):
    layers = [torch.nn.Linear(4, 4)]
    with pytest.raises(ValueError, match="needs probe="):
        one_rank_pipeline(groups, monkeypatch, layers, partition_method="profile")
    with pytest.raises(ValueError, match="either boundaries or partition_method='profile'"):
        one_rank_pipeline(
            groups, monkeypatch, layers, partition_method="profile", boundaries=[0, 1]
        )
    with pytest.raises(ValueError, match="boundaries \\[0, 2\\] must be 2"):
        one_rank_pipeline(groups, monkeypatch, layers, boundaries=[0, 2])
