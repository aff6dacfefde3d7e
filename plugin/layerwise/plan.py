"""Plans for both layouts: stages, layer ranges, chunking and predicted figures (pure data)."""

from dataclasses import dataclass, replace

from layerwise.baseline import plan_baseline
from layerwise.config import (
    Mode,
    RunConfig,
    decode_micro_batch_problems,
    micro_batch_problems,
    replica_counts,
)
from layerwise.cost import model_flops
from layerwise.errors import CapacityError, ConfigError
from layerwise.explain import explain
from layerwise.layouts import Layout, plan_layerwise

REPLICA_OPTIONS_MAX_GPUS = 64  # above this, pricing every replica count costs seconds
TIE = 0.005  # TPOTs closer than this are reported as equal


@dataclass(frozen=True)
class Plan:
    """Both layouts for one config; a layout that cannot run carries the reason instead."""

    config: RunConfig
    baseline: Layout | None
    baseline_error: str
    layerwise: Layout | None
    layerwise_error: str
    roofline_tps: float
    recommended: Mode
    reason: str
    replica_options: tuple[tuple[int, float, float], ...] = ()
    """(replicas, predicted TPS, predicted TPOT s) of the layer-wise layout per replica count."""

    def layout(self, mode: Mode) -> Layout | None:
        return self.baseline if mode == "baseline" else self.layerwise


def roofline_tps(config: RunConfig) -> float:
    """Prefill tokens/s if every GPU ran at the datasheet peak on the model's FLOPs (blocks,
    embedding and LM head)."""
    flops_per_token = model_flops(config.model, config.workload.seq_len)
    return config.hardware.gpus * config.gpu.peak_tflops * 1e12 / flops_per_token


def _try(builder, config: RunConfig) -> tuple[Layout | None, str]:
    try:
        layout = builder(config)
    except CapacityError as error:
        return None, str(error)
    return replace(layout, notes=explain(config, layout)), ""


def _recommend(baseline: Layout | None, layerwise: Layout | None) -> tuple[Mode, str]:
    if baseline is None or layerwise is None:
        fits = "baseline" if layerwise is None else "layerwise"
        return fits, f"only the {fits} layout fits in memory"
    winner, loser = (
        (layerwise, baseline) if layerwise.tps >= baseline.tps else (baseline, layerwise)
    )
    reason = (
        f"{winner.mode}: predicted prefill throughput {winner.tps / loser.tps:.2f}x the "
        f"{loser.mode}'s ({winner.tps:,.0f} vs {loser.tps:,.0f} tokens/s); communication is "
        f"{winner.comm_fraction:.0%} vs {loser.comm_fraction:.0%} of stage time, bubble "
        f"{winner.bubble_fraction:.1%} vs {loser.bubble_fraction:.1%}"
    )
    faster = min((baseline, layerwise), key=lambda layout: layout.tpot_s)
    slower = layerwise if faster is baseline else baseline
    if slower.tpot_s <= faster.tpot_s * (1 + TIE):
        return winner.mode, reason + f". Both take {faster.tpot_s * 1e3:.3f} ms per decode step"
    reason += (
        f". {faster.mode} has the lower TPOT ({faster.tpot_s * 1e3:.3f} vs "
        f"{slower.tpot_s * 1e3:.3f} ms per decode step)"
    )
    if faster is baseline and faster.tensor_parallel > 1:
        reason += (
            f": each GPU reads 1/{faster.tensor_parallel} of every layer's weights (and KV "
            f"cache) per step, in parallel, instead of whole layers one stage after another"
        )
    return winner.mode, reason


def make_plan(config: RunConfig) -> Plan:
    """Plan both layouts. The config's own mode must fit: otherwise ConfigError with the numbers."""
    baseline, baseline_error = _try(plan_baseline, config)
    layerwise, layerwise_error = _try(plan_layerwise, config)
    own_error = baseline_error if config.mode == "baseline" else layerwise_error
    if own_error:
        raise ConfigError(
            [f"mode {config.mode!r}: the model does not fit HBM: {own_error}"], config.source
        )
    problems = deepspeed_problems(config, layerwise) if layerwise is not None else []
    if problems:
        raise ConfigError(problems, config.source)
    recommended, reason = _recommend(baseline, layerwise)
    return Plan(
        config,
        baseline,
        baseline_error,
        layerwise,
        layerwise_error,
        roofline_tps(config),
        recommended,
        reason,
        replica_options(config),
    )


def replica_options(config: RunConfig) -> tuple[tuple[int, float, float], ...]:
    """The layer-wise layout priced at every possible replica count (data parallelism across
    pipelines), for configs of at most REPLICA_OPTIONS_MAX_GPUS GPUs."""
    if config.hardware.gpus > REPLICA_OPTIONS_MAX_GPUS:
        return ()
    options = []
    for replicas in replica_counts(config.model, config.hardware.gpus, config.workload.batch_size):
        sequences = config.workload.batch_size // replicas
        options_of = config.layerwise
        if micro_batch_problems(
            "layerwise", options_of.micro_batches, sequences, config.model, config.workload
        ) or decode_micro_batch_problems("layerwise", options_of.decode_micro_batches, sequences):
            continue  # the configured micro-batch counts do not split this replica's batch
        try:
            layout = plan_layerwise(config, replicas)
        except CapacityError:
            continue
        options.append((replicas, layout.tps, layout.tpot_s))
    return tuple(options)


def deepspeed_keys(layout: Layout) -> dict[str, int]:
    """The DeepSpeed batch keys the layer-wise plan decides (inference: one eval_batch is one
    replica's prefill batch, `micro_batches` chunks of `micro_batch_rows` rows each)."""
    return {
        "train_micro_batch_size_per_gpu": layout.micro_batch_rows,
        "gradient_accumulation_steps": layout.micro_batches,
        "train_batch_size": layout.micro_batch_rows * layout.micro_batches * layout.replicas,
    }


PRECISION_SECTIONS = ("fp16", "bf16", "amp")


def deepspeed_problems(config: RunConfig, layout: Layout) -> list[str]:
    """Keys of the `deepspeed` section (which configures the layer-wise runtime) that contradict
    the plan: batch keys with other values than the plan's, and mixed-precision sections, since
    the precision is `run.dtype` (DeepSpeed's fp16/bf16 wrap a training optimizer around the
    model, which costs memory and changes nothing for inference)."""
    problems = [
        f"deepspeed.{key} = {config.deepspeed[key]!r} contradicts the plan's {value} "
        f"(leave it out: the planner fills it in)"
        for key, value in deepspeed_keys(layout).items()
        if key in config.deepspeed and config.deepspeed[key] != value
    ]
    for section in PRECISION_SECTIONS:
        value = config.deepspeed.get(section)
        if isinstance(value, dict) and value.get("enabled") not in (None, False):
            problems.append(
                f"deepspeed.{section}.enabled = {value['enabled']!r} contradicts run.dtype = "
                f"{config.run.dtype!r}: the precision is run.dtype (DeepSpeed's {section} "
                f"section wraps a training optimizer around the model); leave it out"
            )
    return problems
