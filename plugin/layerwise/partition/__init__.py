"""The exact min-max contiguous partition and its tie-break."""
