"""The layouts the distributed worker runs, keyed by name (no imports: the test reads it too)."""

LAYOUTS = {  # key: (config, changes)
    "mock_dense/layerwise/stages=4": ("mock_dense_layerwise", {"layerwise": {"replicas": 1}}),
    "mock_dense/layerwise/stages=2": ("mock_dense_layerwise", {"layerwise": {"replicas": 2}}),
    "mock_gpt/layerwise/stages=4": ("mock_gpt_layerwise", {"layerwise": {"replicas": 1}}),
    "mock_gpt/layerwise/stages=2": ("mock_gpt_layerwise", {"layerwise": {"replicas": 2}}),
    "mock_llama/layerwise/stages=4": ("mock_llama_layerwise", {"layerwise": {"replicas": 1}}),
    "mock_llama/layerwise/stages=2": ("mock_llama_layerwise", {"layerwise": {"replicas": 2}}),
    **{
        f"{model}/baseline/tp={tp}xpp={pp}": (
            f"{model}_baseline",
            {"baseline": {"tensor_parallel": tp, "pipeline_parallel": pp}},
        )
        for model in ("mock_dense", "mock_gpt", "mock_llama")
        for tp, pp in ((2, 2), (4, 1), (1, 4))
        if (model, tp) != ("mock_llama", 4)  # its 2 K/V heads do not split 4 ways
    },
}
MODELS = ("mock_dense", "mock_gpt", "mock_llama")
