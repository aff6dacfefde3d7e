"""What is placed: ModelSpec, the presets, Hugging Face config.json reading."""
