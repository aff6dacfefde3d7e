"""Replica counts of the layer-wise layout: which the GPUs, the batch and the configured
micro-batch counts allow, and which of them the planner prices.

A replica is one copy of the whole pipeline: replicas x stages = GPUs, so choosing the replica
count chooses the stages per replica (stages may hold no layers: the partitioner allows it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from layerwise.model.spec import ModelSpec

if TYPE_CHECKING:
    from layerwise.config.sections import Auto, LayerwiseOptions, Workload

REPLICA_OPTIONS_MAX_GPUS = 64
"""Up to this many GPUs every replica count is priced; above, pricing each costs seconds, so
only powers of two, the deepest and the shallowest pipeline and any configured count are."""


def placed_layers(model: ModelSpec) -> str:
    """What a pipeline places, named by its config fields."""
    if not model.vocab_size:
        return f"model.num_layers = {model.num_layers}"
    return (
        f"the {model.pipeline_layers} pipeline layers (model.num_layers = {model.num_layers} "
        f"blocks + embedding + LM head)"
    )


def replica_counts(model: ModelSpec, gpus: int, batch_size: int) -> list[int]:
    """Replica counts that divide the GPUs and the batch and leave no more stages than
    pipeline layers."""
    return [
        r
        for r in range(1, gpus + 1)
        if gpus % r == 0 and batch_size % r == 0 and gpus // r <= model.pipeline_layers
    ]


def decode_micro_batch_problems(section: str, micro_batches: int | str, sequences: int) -> list:
    """A decode micro-batch holds whole sequences, the same number in each."""
    if micro_batches == "auto" or (micro_batches >= 1 and sequences % micro_batches == 0):
        return []
    return [
        f"{section}.decode_micro_batches = {micro_batches} must divide the {sequences} "
        f"sequences per pipeline (equal micro-batches)"
    ]


def micro_batch_problems(
    section: str, micro_batches: int | str, sequences: int, model: ModelSpec, workload: Workload
) -> list[str]:
    """A chunk holds whole sequences (gpt, and every baseline chunk) or any tokens (dense)."""
    if micro_batches == "auto":
        return []
    units = (
        sequences * workload.seq_len
        if (section == "layerwise" and model.tokens_independent)
        else sequences
    )
    if micro_batches < 1 or units % micro_batches:
        unit = "tokens" if units != sequences else "sequences"
        return [
            f"{section}.micro_batches = {micro_batches} must divide the {units} {unit} "
            f"per pipeline (equal micro-batches)"
        ]
    return []


def split_problems(
    model: ModelSpec, workload: Workload, options: LayerwiseOptions, replicas: int
) -> list[str]:
    """Why the configured (decode) micro-batch counts cannot split one replica's batch."""
    sequences = workload.batch_size // replicas
    return micro_batch_problems(
        "layerwise", options.micro_batches, sequences, model, workload
    ) + decode_micro_batch_problems("layerwise", options.decode_micro_batches, sequences)


def splittable_counts(
    model: ModelSpec, gpus: int, workload: Workload, options: LayerwiseOptions
) -> list[int]:
    """The replica counts whose batch the configured micro-batch counts split: what "auto"
    chooses among."""
    return [
        replicas
        for replicas in replica_counts(model, gpus, workload.batch_size)
        if not split_problems(model, workload, options, replicas)
    ]


def searched_counts(
    model: ModelSpec, gpus: int, workload: Workload, options: LayerwiseOptions
) -> tuple[list[int], bool]:
    """(the replica counts to price, whether that is a subset of the valid ones). Up to
    REPLICA_OPTIONS_MAX_GPUS GPUs every valid count; above, the powers of two, the deepest and
    the shallowest pipeline and the configured count, so the search stays affordable."""
    valid = splittable_counts(model, gpus, workload, options)
    if gpus <= REPLICA_OPTIONS_MAX_GPUS or not valid:
        return valid, False
    keep = {valid[0], valid[-1], configured_replicas(gpus, options)}
    chosen = [r for r in valid if r & (r - 1) == 0 or r in keep]
    return chosen, len(chosen) < len(valid)


def configured_replicas(gpus: int, options: LayerwiseOptions) -> int | Auto:
    """The replica count the run uses when the config fixes one: layerwise.replicas, or under
    "auto" with layerwise.stage_layers gpus / its length (a forced split fixes the stages);
    "auto" otherwise (also when that length does not divide the GPUs: forced.py says so)."""
    split = options.stage_layers
    if options.replicas != "auto" or not split or gpus % len(split):
        return options.replicas
    return gpus // len(split)


def _replicas_named(gpus: int, options: LayerwiseOptions, replicas: int) -> str:
    """The configured count as the config gives it, for the messages."""
    if options.replicas != "auto":
        return f"layerwise.replicas = {replicas}"
    return (
        f'layerwise.replicas "auto" = hardware.gpus / len(layerwise.stage_layers) = {gpus} / '
        f"{len(options.stage_layers)} = {replicas}"
    )


def _count_problems(
    model: ModelSpec, gpus: int, workload: Workload, options: LayerwiseOptions, replicas: int
) -> list[str]:
    """A fixed replica count must divide the GPUs and the batch, leave no more stages than
    layers, and let the micro-batch counts split its batch."""
    named = _replicas_named(gpus, options, replicas)
    if gpus % replicas or workload.batch_size % replicas:
        return [
            f"{named} must divide hardware.gpus = {gpus} and "
            f"workload.batch_size = {workload.batch_size}"
        ]
    stages = gpus // replicas
    if stages > model.pipeline_layers and options.replicas == "auto":
        return [
            f"layerwise.stage_layers: {stages} stages is more than {placed_layers(model)}; "
            f"a replica has at most one stage per layer"
        ]
    if stages > model.pipeline_layers:
        return [
            f"layerwise: hardware.gpus / layerwise.replicas = {gpus} / {replicas} = "
            f"{stages} stages is more than {placed_layers(model)}; "
            f'use more replicas or "auto"'
        ]
    return split_problems(model, workload, options, replicas)


def replica_problems(
    model: ModelSpec, gpus: int, workload: Workload, options: LayerwiseOptions
) -> list[str]:
    """The configured replica count (configured_replicas), or for "auto" some count, must
    divide the GPUs and the batch, leave no more stages than layers, and let the micro-batch
    counts split its batch."""
    replicas = configured_replicas(gpus, options)
    if replicas != "auto":
        return _count_problems(model, gpus, workload, options, replicas)
    counts = replica_counts(model, gpus, workload.batch_size)
    if not counts:
        return [
            f"layerwise.replicas: no count divides hardware.gpus = {gpus} and "
            f"workload.batch_size = {workload.batch_size} with at most "
            f"{placed_layers(model)} stages per replica"
        ]
    if splittable_counts(model, gpus, workload, options):
        return []
    return [
        f"{problem} (layerwise.replicas 'auto': no replica count out of "
        f"{', '.join(map(str, counts))} leaves a batch it splits)"
        for problem in split_problems(model, workload, options, counts[0])
    ]
