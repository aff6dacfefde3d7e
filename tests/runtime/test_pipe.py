"""Partition arguments and verification, without a pipeline."""

import pytest
import torch

from layerwise.runtime.pipe import check_boundaries, profile_layers
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
    """LayerwisePipelineModule overrides PipelineModule._partition_layers(method) and calls
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
