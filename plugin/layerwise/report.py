"""The plan as text tables and as JSON (every figure here is PREDICTED by the cost model)."""

from layerwise.layouts import Layout, StagePlan
from layerwise.plan import Plan
from layerwise.specs import ModelSpec

GIB = 2**30
MIB = 2**20
STAGE_ROWS = 16  # longer stage tables show the first and last rows; the JSON has every stage


def _layers(stage: StagePlan) -> str:
    if stage.num_layers == 0:
        return "-"
    return (
        f"{stage.first_layer}-{stage.stop_layer - 1}"
        if stage.num_layers > 1
        else str(stage.first_layer)
    )


def _ranks(stage: StagePlan) -> str:
    ranks = stage.ranks
    return f"{ranks[0]}-{ranks[-1]}" if len(ranks) > 1 else str(ranks[0])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(str(value).rjust(width) for value, width in zip(row, widths))

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def stage_table(layout: Layout) -> list[str]:
    header = [
        "stage",
        "gpus",
        "layers",
        "n",
        "weights MiB",
        "fits L2",
        "chunk tok",
        "prefill ms",
        "(comm ms)",
        "decode ms",
        "memory GiB",
    ]
    rows = [
        [
            str(s.index),
            _ranks(s),
            _layers(s),
            str(s.num_layers),
            f"{s.weight_bytes / MIB:,.1f}",
            "yes" if s.weights_fit_l2 else "no",
            f"{layout.chunk_tokens:,}",
            f"{s.prefill_s * 1e3:.3f}",
            f"{s.prefill_comm_s * 1e3:.3f}",
            f"{s.decode_s * 1e3:.3f}",
            f"{s.memory_bytes / GIB:.2f}",
        ]
        for s in layout.stages
    ]
    if len(rows) > STAGE_ROWS:
        half = STAGE_ROWS // 2
        skipped = len(rows) - STAGE_ROWS
        rows = rows[:half] + [["..."] + [""] * (len(header) - 1)] + rows[-half:]
        return _table(header, rows) + [f"({skipped} stages not shown; --json lists all)"]
    return _table(header, rows)


def _summary_rows(layout: Layout | None, error: str) -> list[str]:
    if layout is None:
        return ["does not fit: " + error] + [""] * 12
    return [
        f"TP {layout.tensor_parallel} x {len(layout.stages)} stages x {layout.replicas} replicas",
        f"{layout.chunk_tokens:,} x {layout.micro_batches:,}",
        f"{layout.tps:,.0f}",
        f"{layout.tpot_s * 1e3:.3f}",
        f"{1e3 / layout.tps:.6f}",
        f"{layout.decode_tps:,.0f}",
        f"{layout.decode_micro_batches}, {'streamed' if layout.decode_streamed else 'per step'}",
        f"{layout.bubble_fraction:.1%}",
        f"{layout.utilisation:.1%}",
        f"{layout.comm_fraction:.1%}",
        f"{layout.memory_bytes_per_gpu / GIB:.2f}",
        f"{layout.prefill_s:.3f}",
    ]


def summary_table(plan: Plan) -> list[str]:
    labels = [
        "layout",
        "chunk tokens x micro-batches",
        "prefill TPS (tokens/s)",
        "TPOT (ms, one decode step)",
        "1/TPS (ms, the seed's 'TPOT')",
        "decode TPS (tokens/s)",
        "decode micro-batches",
        "bubble (fill + drain)",
        "GPU utilisation",
        "communication share",
        "peak memory/GPU (GiB)",
        "prefill batch (s)",
    ]
    base = _summary_rows(plan.baseline, plan.baseline_error)
    layer = _summary_rows(plan.layerwise, plan.layerwise_error)
    rows = [[label, b, lw] for label, b, lw in zip(labels, base, layer)]
    return _table(["PREDICTED", "baseline", "layerwise"], rows)


def _model_layers(model: ModelSpec) -> str:
    params = model.block_params
    each = f"{params / 1e6:,.1f}M" if params >= 10**6 else f"{params:,}"
    blocks = f"{model.num_layers} layers, {each} parameters each"
    if not model.vocab_size:
        return blocks
    return (
        f"{blocks} + token embedding and LM head ({model.vocab_size:,} x {model.hidden:,}) = "
        f"{model.pipeline_layers} pipeline layers"
    )


def render(plan: Plan) -> str:
    config = plan.config
    work = config.workload
    lines = [
        f"layerwise plan for {config.source} (mode {config.mode!r}, objective "
        f"{config.objective!r}): every figure is PREDICTED",
        f"model {config.model.name}: {_model_layers(config.model)}, {config.run.dtype}; "
        f"hardware {config.hardware.gpus} x {config.gpu.name} "
        f"({config.gpu.gpus_per_node} per node); batch {work.batch_size} x {work.seq_len:,} = "
        f"{work.prefill_tokens:,} prefill tokens, decode at context {work.seq_len:,}",
    ]
    for mode, layout, error in (
        ("baseline", plan.baseline, plan.baseline_error),
        ("layerwise", plan.layerwise, plan.layerwise_error),
    ):
        lines += ["", f"== {mode} =="]
        if layout is None:
            lines.append(f"does not fit: {error}")
            continue
        lines += stage_table(layout)
        lines += [f"  * {note}" for note in layout.notes]
    options = "; ".join(
        f"{replicas}: {tps:,.0f} tokens/s, TPOT {tpot * 1e3:.3f} ms"
        for replicas, tps, tpot in plan.replica_options
    )
    lines += [
        "",
        *summary_table(plan),
        "",
        f"roofline (datasheet peak, all GPUs busy): {plan.roofline_tps:,.0f} tokens/s",
    ]
    if options:
        lines.append(f"layer-wise by replica count (layerwise.replicas): {options}")
    lines.append(f"compared: {plan.compared}")
    lines.append(f"recommended: {plan.recommended} -- {plan.reason}")
    return "\n".join(lines)


def _stage_dict(layout: Layout, stage: StagePlan) -> dict:
    return {
        "index": stage.index,
        "ranks": list(stage.ranks),
        "layers": [stage.first_layer, stage.stop_layer],
        "num_layers": stage.num_layers,
        "weight_bytes": stage.weight_bytes,
        "fits_l2": stage.weights_fit_l2,
        "chunk_tokens": layout.chunk_tokens,
        "prefill_ms": stage.prefill_s * 1e3,
        "prefill_compute_ms": stage.prefill_compute_s * 1e3,
        "prefill_comm_ms": stage.prefill_comm_s * 1e3,
        "decode_ms": stage.decode_s * 1e3,
        "memory_bytes": stage.memory_bytes,
    }


def layout_dict(layout: Layout | None, error: str) -> dict:
    if layout is None:
        return {"feasible": False, "error": error}
    return {
        "feasible": True,
        "mode": layout.mode,
        "tensor_parallel": layout.tensor_parallel,
        "pipeline_stages": len(layout.stages),
        "replicas": layout.replicas,
        "chunk_tokens": layout.chunk_tokens,
        "micro_batches": layout.micro_batches,
        "micro_batch_rows": layout.micro_batch_rows,
        "chunk_fits_l2": layout.chunk_fits_l2,
        "tps": layout.tps,
        "tpot_ms": layout.tpot_s * 1e3,
        "tpot_without_l2_ms": layout.tpot_without_l2_s * 1e3,
        "inv_tps_ms": 1e3 / layout.tps,
        "decode_tps": layout.decode_tps,
        "decode_micro_batches": layout.decode_micro_batches,
        "decode_streamed": layout.decode_streamed,
        "prefill_batch_s": layout.prefill_s,
        "bubble_fraction": layout.bubble_fraction,
        "utilisation": layout.utilisation,
        "comm_fraction": layout.comm_fraction,
        "memory_bytes_per_gpu": layout.memory_bytes_per_gpu,
        "notes": list(layout.notes),
        "stages": [_stage_dict(layout, stage) for stage in layout.stages],
    }


def plan_dict(plan: Plan) -> dict:
    config = plan.config
    return {
        "figures": "predicted",
        "config": config.source,
        "mode": config.mode,
        "objective": config.objective,
        "model": config.model.name,
        "hardware": config.gpu.name,
        "gpus": config.hardware.gpus,
        "gpus_per_node": config.gpu.gpus_per_node,
        "prefill_tokens": config.workload.prefill_tokens,
        "roofline_tps": plan.roofline_tps,
        "baseline": layout_dict(plan.baseline, plan.baseline_error),
        "layerwise": layout_dict(plan.layerwise, plan.layerwise_error),
        "recommended": plan.recommended,
        "reason": plan.reason,
        "compared": plan.compared,
        "best_layerwise_replicas": plan.best_layerwise and plan.best_layerwise.replicas,
        "layerwise_by_replicas": [
            {"replicas": replicas, "tps": tps, "tpot_ms": tpot * 1e3}
            for replicas, tps, tpot in plan.replica_options
        ],
        "layerwise_replicas_searched": "subset" if plan.replica_subset else "all",
    }
