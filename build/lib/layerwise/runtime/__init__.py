"""Runtimes that execute a plan: torch, DeepSpeed and megatron-core, imported on demand.

Nothing here is imported by the planning modules; `mock.py` holds the only CPU-mode patches.
"""
