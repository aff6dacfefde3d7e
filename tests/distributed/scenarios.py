"""The layouts the distributed worker runs, keyed by name (no imports: the test reads it too)."""

STREAM = {"decode_micro_batches": 4}  # 4 decode micro-batches on 4 stages: steps stream
LAYOUTS = {  # key: (config, changes)
    "mock_dense/layerwise/stages=4": (
        "mock_dense_layerwise",
        {"layerwise": {"replicas": 1, **STREAM}},
    ),
    "mock_dense/layerwise/stages=2": ("mock_dense_layerwise", {"layerwise": {"replicas": 2}}),
    "mock_gpt/layerwise/stages=4": ("mock_gpt_layerwise", {"layerwise": {"replicas": 1, **STREAM}}),
    "mock_gpt/layerwise/stages=2": ("mock_gpt_layerwise", {"layerwise": {"replicas": 2}}),
    "mock_llama/layerwise/stages=4": (
        "mock_llama_layerwise",
        {"layerwise": {"replicas": 1, **STREAM}},
    ),
    "mock_llama/layerwise/stages=2": ("mock_llama_layerwise", {"layerwise": {"replicas": 2}}),
    "mock_gpt/layerwise/forced=3,0,4,1/stages=4": (  # uneven, with an empty stage
        "mock_gpt_layerwise",
        {"layerwise": {"replicas": 1, "stage_layers": [3, 0, 4, 1]}},
    ),
    "mock_gpt/baseline/forced=1,3,3,1/tp=1xpp=4": (  # megatron's first/last keys
        "mock_gpt_baseline",
        {"baseline": {"tensor_parallel": 1, "pipeline_parallel": 4, "stage_layers": [1, 3, 3, 1]}},
    ),
    "mock_llama/baseline/tp=1xpp=4": (
        "mock_llama_baseline",
        {"baseline": {"tensor_parallel": 1, "pipeline_parallel": 4, **STREAM}},
    ),
    **{
        f"{model}/baseline/tp={tp}xpp={pp}": (
            f"{model}_baseline",
            {"baseline": {"tensor_parallel": tp, "pipeline_parallel": pp}},
        )
        for model in ("mock_dense", "mock_gpt", "mock_llama")
        for tp, pp in ((2, 2), (4, 1), (1, 4))
        if model != "mock_llama" or tp == 2  # its 2 K/V heads do not split 4 ways
    },
}
MODELS = ("mock_dense", "mock_gpt", "mock_llama")
