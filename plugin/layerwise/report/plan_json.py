"""The plan as a JSON document (every figure PREDICTED): one dict per layout and stage."""

from layerwise.planner.plan import label
from layerwise.planner.records import Layout, Plan, StagePlan


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
        "tpot_device_ms": _ms(layout.tpot_device_s),
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
        "forced_split": None if layout.forced_split is None else list(layout.forced_split),
        "stages": [_stage_dict(layout, stage) for stage in layout.stages],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def candidate_dict(layout: Layout) -> dict:
    """One runnable layout in the terms a config sets (mode, sizes), with its figures."""
    return {
        "label": label(layout),
        "mode": layout.mode,
        "tensor_parallel": layout.tensor_parallel,
        "pipeline_parallel": len(layout.stages),
        "replicas": layout.replicas,
        "layers_per_stage": [stage.num_layers for stage in layout.stages],
        "chunk_tokens": layout.chunk_tokens,
        "micro_batches": layout.micro_batches,
        "decode_micro_batches": layout.decode_micro_batches,
        "tps": layout.tps,
        "tpot_ms": layout.tpot_s * 1e3,
        "tpot_device_ms": _ms(layout.tpot_device_s),
        "decode_tps": layout.decode_tps,
        "memory_bytes_per_gpu": layout.memory_bytes_per_gpu,
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
        "batch_size": config.workload.batch_size,
        "max_batch": config.max_batch,
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
        "candidates": [candidate_dict(layout) for layout in plan.candidates],
        "skipped": list(plan.skipped),
        "recommendation": candidate_dict(plan.candidates[0]) if plan.candidates else None,
    }
