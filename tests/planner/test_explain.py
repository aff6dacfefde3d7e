"""The notes under each stage table."""

from tests.planner.plans import mock_plan


def test_the_plan_says_when_the_profile_lacks_this_models_host_time(tmp_path):
    only_dense = {"dense": 30.0}
    notes = mock_plan(tmp_path, "mock_llama_layerwise", layer_host_us=only_dense).notes
    assert any("no host time per call of embedding, head, llama layers" in n for n in notes)
    full = mock_plan(tmp_path, "mock_llama_layerwise").notes  # the shipped profile has them
    assert not any("no host time" in note for note in full)
