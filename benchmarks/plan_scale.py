"""Time the exact partitioner at scale and a full plan of a 1,000-layer model on 1,024 H100s.

Prints the best of --repeats runs of
  - partition() of 1,000 layers on 1,024 stages and 10,000 layers on 64 stages, each with equal
    boundary sizes and with sizes differing per layer (token ids in, logits out, hidden states
    of random size between), random layer costs, a slow link every 8 stages (target: < 0.1 s
    each on a 2-core CPU);
  - make_plan(load_config(--config)), what launch/plan.py does before printing.

Run: python benchmarks/plan_scale.py [--config configs/scale_1000_layers.json --repeats 3]
"""

import argparse
import random
import time

from layerwise.config.load import load_config
from layerwise.partition.search import Link, PartitionProblem, partition
from layerwise.planner.plan import make_plan

HIDDEN_BYTES = 16e6  # a 4096-token chunk of a 2048-wide bf16 model
TOKEN_ID_BYTES, LOGIT_BYTES = 16e3, 2e9


def scale_problem(layers: int, stages: int, differing: bool, seed: int = 0) -> PartitionProblem:
    """Costs of 0.9-1.1 ms, 0.1 GB resident per layer on 80 GB GPUs, NVLink within 8 GPUs and
    a 50 GB/s link between; `differing`: every boundary 0.5-1.5x the hidden size, token ids
    into the first layer and logits out of the last."""
    rng = random.Random(seed)
    sizes = [HIDDEN_BYTES * (rng.uniform(0.5, 1.5) if differing else 1) for _ in range(layers + 1)]
    if differing:
        sizes[0], sizes[-1] = TOKEN_ID_BYTES, LOGIT_BYTES
    return PartitionProblem(
        tuple(rng.uniform(0.9e-3, 1.1e-3) for _ in range(layers)),
        tuple(sizes),
        (1e8,) * layers,
        tuple(Link(5e-6, 450e9 if (s + 1) % 8 else 50e9) for s in range(stages - 1)),
        (80e9,) * stages,
    )


def best_of(repeats: int, run, argument) -> tuple[float, object]:
    """(Fewest seconds of `repeats` calls run(argument), the last result)."""
    timings, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(argument)
        timings.append(time.perf_counter() - start)
    return min(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/scale_1000_layers.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for layers, stages in ((1000, 1024), (10000, 64)):
        for differing in (False, True):
            problem = scale_problem(layers, stages, differing)
            seconds, found = best_of(args.repeats, partition, problem)
            sizes = "differing" if differing else "equal"
            print(
                f"partition {layers:>6,} layers on {stages:>5,} stages, {sizes:>9} sizes: "
                f"best {seconds:.3f} s of {args.repeats} (bottleneck {found.bottleneck * 1e3:.4f} "
                f"ms, sum {sum(found.stage_costs):.4f} s)"
            )
    config = load_config(args.config)
    seconds, plan = best_of(args.repeats, make_plan, config)
    layout = plan.layerwise
    print(
        f"make_plan({args.config}): {config.model.num_layers} layers on {config.hardware.gpus} "
        f"GPUs ({config.gpu.name}): best {seconds:.3f} s of {args.repeats}"
    )
    if layout is None:
        print(f"layerwise: no layout ({plan.layerwise_error})")
        return
    print(
        f"layerwise: {layout.replicas} replica(s) x {len(layout.stages)} stages, "
        f"chunk {layout.chunk_tokens} tokens, predicted {layout.tps:,.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
