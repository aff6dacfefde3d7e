"""Tuning: run the layouts the planner ranks best on this machine and keep the one that measures
best, because the recommendation must be the layout that measures best, not only the one the
cost model prices best.

`candidates.py` derives each candidate's run config from a config and ranks them by predicted
figure (pure); `select.py` orders the runs (interleaved rounds), summarises them and scores the
model's ranking (pure); `cli/tune.py` runs them. Nothing here imports torch."""
