"""The command-line programs (plan, infer, compare, calibrate) and their shared helpers."""
