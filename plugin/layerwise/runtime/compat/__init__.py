"""Every contact with DeepSpeed and megatron-core internals, and every patch (CPU mock mode, c10d
defaults), in one place."""
