"""What a layer costs: kernels, collectives, pipeline timing (pure functions)."""
