"""The figure labels that the plan, the runtime's table, compare and the plots share."""

FIGURES = (
    ("prefill TPS (tokens/s)", "tps", ",.0f"),
    ("TPOT (ms, decode step)", "tpot_ms", ".3f"),
    ("decode TPS (tokens/s)", "decode_tps", ",.0f"),
    ("1/TPS (ms)", "inv_tps_ms", ".6f"),
)
