"""The `deepspeed` section of a config against the plan: an allow-list of the keys inference
uses, the batch keys the plan decides, and the precision sections it refuses.

Torch-free: the CLIs check a config with it before any rank starts."""

from layerwise.config.sections import RunConfig
from layerwise.planner.records import Layout


def deepspeed_keys(layout: Layout) -> dict[str, int]:
    """The DeepSpeed batch keys the layer-wise plan decides (inference: one eval_batch is one
    replica's prefill batch, `micro_batches` chunks of `micro_batch_rows` rows each)."""
    return {
        "train_micro_batch_size_per_gpu": layout.micro_batch_rows,
        "gradient_accumulation_steps": layout.micro_batches,
        "train_batch_size": layout.micro_batch_rows * layout.micro_batches * layout.replicas,
    }


PRECISION_SECTIONS = ("fp16", "bf16", "amp")
ALLOWED_KEYS = frozenset(
    {
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "train_batch_size",
        *PRECISION_SECTIONS,
        "steps_per_print",
        "wall_clock_breakdown",
        "memory_breakdown",
        "dump_state",
        "pipeline",
        "zero_optimization",
        "communication_data_type",
        "gradient_clipping",
        "prescale_gradients",
        "gradient_predivide_factor",
        "sparse_gradients",
        "zero_allow_untested_optimizer",
        "seed",
    }
)
"""Keys that change how DeepSpeed builds or logs to stdout, and nothing outside the process;
any other (monitors: tensorboard, wandb, csv_monitor, comet; flops_profiler; comms_logger;
checkpoint, aio, nebula, autotuning, ...) writes files or opens connections: refused."""


def deepspeed_problems(config: RunConfig, layout: Layout) -> list[str]:
    """Keys of the `deepspeed` section (which configures the layer-wise runtime) that contradict
    the plan: batch keys with other values than the plan's, and mixed-precision sections, since
    the precision is `run.dtype` (DeepSpeed's fp16/bf16 wrap a training optimizer around the
    model, which costs memory and changes nothing for inference)."""
    problems = [
        f"deepspeed.{str(key)[:60]}: not allowed for inference (it writes files or opens "
        f"connections, or inference does not use it; allowed: {', '.join(sorted(ALLOWED_KEYS))})"
        for key in sorted(set(config.deepspeed) - ALLOWED_KEYS, key=str)
    ]
    zero = config.deepspeed.get("zero_optimization")
    if isinstance(zero, dict):
        problems += [
            f"deepspeed.zero_optimization.{key}: not allowed for inference (offloading writes "
            "to host memory or NVMe files)"
            for key in sorted(zero, key=str)
            if "offload" in str(key)
        ]
    problems += [
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
