"""One runner per layout behind one base class: the base owns prefill, decode and the KV-cache
start; a runner builds its part and runs micro-batches."""
