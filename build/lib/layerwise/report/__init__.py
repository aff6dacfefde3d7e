"""The plan and the runs as text, JSON and plots; the figure labels all share."""
