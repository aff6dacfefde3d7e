"""The plan as text tables: stages, summary, recommendation (every figure PREDICTED)."""

from collections.abc import Sequence

from layerwise.model.spec import ModelSpec
from layerwise.planner.capacity import AtLargest
from layerwise.planner.plan import label
from layerwise.planner.records import Layout, Plan, StagePlan

GIB = 2**30


MIB = 2**20


STAGE_ROWS = 16  # longer stage tables show the first and last rows; the JSON has every stage


def describe(layout: Layout) -> str:
    """The layout in one line, as a Megatron or DeepSpeed user would name it."""
    if layout.mode == "baseline":
        shape = f"TP={layout.tensor_parallel} x PP={len(layout.stages)} (megatron-core)"
    else:
        shape = (
            f"{layout.replicas} replica(s) x {len(layout.stages)} stages, layers "
            f"{[stage.num_layers for stage in layout.stages]} (DeepSpeed pipeline)"
        )
    decode = "streamed through the pipeline" if layout.decode_streamed else "a run per step"
    return (
        f"{shape}; prefill in {layout.micro_batches} chunk(s) of {layout.chunk_tokens:,} tokens"
        f", decode in {layout.decode_micro_batches} micro-batch(es), {decode}"
    )


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


CANDIDATE_ROWS = 10  # the ranked table shows the best ten; the JSON has every candidate


def candidate_table(plan: Plan) -> list[str]:
    """The runnable layouts ranked for the objective (the best ten), and what did not fit."""
    ranked = plan.candidates
    header = [
        "rank",
        "layout",
        "layers per stage",
        "chunk x mb",
        "decode mb",
        "prefill TPS",
        "TPOT ms",
        "memory GiB",
    ]
    rows = [
        [
            str(index),
            label(layout),
            _spread([stage.num_layers for stage in layout.stages]),
            f"{layout.chunk_tokens} x {layout.micro_batches}",
            str(layout.decode_micro_batches),
            f"{layout.tps:,.0f}",
            f"{layout.tpot_s * 1e3:.3f}",
            f"{layout.memory_bytes_per_gpu / GIB:.2f}",
        ]
        for index, layout in enumerate(ranked[:CANDIDATE_ROWS], start=1)
    ]
    shown = f"the best {CANDIDATE_ROWS}" if len(ranked) > CANDIDATE_ROWS else "all"
    lines = [
        f"runnable layouts: {len(ranked)}, best first for {plan.config.objective} ({shown}; "
        f"PREDICTED)",
        *_table(header, rows),
    ]
    lines += [f"  does not fit: {line}" for line in plan.skipped]
    return lines


def _spread(counts: list[int]) -> str:
    """Layers per stage, shortened when long: 2/2/2/2, or 4/4/.../4 (64 stages)."""
    if len(counts) <= 8:
        return "/".join(map(str, counts))
    return f"{counts[0]}/{counts[1]}/.../{counts[-1]} ({len(counts)} stages)"


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
    if config.max_batch:
        lines.append(
            f'workload.batch_size "max": {work.batch_size}, the largest the config\'s own '
            f"{config.mode} layout fits in memory, KV cache included"
        )
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
    lines += ["", *candidate_table(plan), ""]
    lines.append(f"compared: {plan.compared}")
    lines.append(f"recommended: {plan.recommended} -- {plan.reason}")
    return "\n".join(lines)


def largest_batch_table(rows: Sequence[AtLargest]) -> str:
    """Each layout at its own largest batch (planner/capacity.AtLargest), best decode tokens/s
    first: the batch it decodes at once, decode tokens/s, TPOT and its device-only part."""
    lines = [
        "each layout at the largest batch it fits (PREDICTED), best decode tokens/s first:",
        f"{'layout':>34}{'batch':>8}{'decode TPS':>12}{'TPOT ms':>10}{'device ms':>11}"
        f"{'prefill TPS':>13}{'memory GiB':>12}",
    ]
    for row in rows:
        if row.layout is None:
            lines.append(f"{row.label:>34}  fits no batch: {row.error.splitlines()[0][:120]}")
            continue
        layout = row.layout
        device = layout.tpot_device_s
        lines.append(
            f"{row.label:>34}{row.batch_size:>8}{layout.decode_tps:>12,.0f}"
            f"{layout.tpot_s * 1e3:>10.1f}{(device or layout.tpot_s) * 1e3:>11.1f}"
            f"{layout.tps:>13,.0f}{layout.memory_bytes_per_gpu / 2**30:>12.1f}"
        )
    best = next((row for row in rows if row.layout is not None), None)
    if best is not None:
        lines.append(
            f"most decode tokens/s at its own largest batch: {best.label}, {best.batch_size} "
            f"sequences at once, {best.layout.decode_tps:,.0f} tokens/s"
        )
    return "\n".join(lines)
