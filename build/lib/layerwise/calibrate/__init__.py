"""Measure this machine into a hardware profile: pure fits, then kernels, layer host time, links
and the pipeline engines.

Only `fit` is torch-free; the rest imports torch."""
