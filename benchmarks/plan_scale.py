"""Plan 1,000 seed-dense layers layer-wise on 1,024 H100s and print the seconds taken.

Target: well under 1 s on a 2-core CPU. Run: python benchmarks/plan_scale.py [--layers N --gpus N]
"""

import argparse
import dataclasses
import time

from layerwise.config import load_config
from layerwise.explain import explain
from layerwise.layouts import plan_layerwise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/seed_dense_layerwise.json")
    parser.add_argument("--layers", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = load_config(args.config)
    config = dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, num_layers=args.layers),
        hardware=dataclasses.replace(base.hardware, gpus=args.gpus),
    )
    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        layout = plan_layerwise(config)
        explain(config, layout)
        timings.append(time.perf_counter() - start)
    print(
        f"planned {args.layers} layers on {args.gpus} GPUs ({config.gpu.name}): "
        f"best {min(timings):.3f} s, median {sorted(timings)[len(timings) // 2]:.3f} s "
        f"over {args.repeats} runs"
    )
    print(
        f"layerwise: {layout.replicas} replica(s) x {len(layout.stages)} stages, "
        f"chunk {layout.chunk_tokens} tokens, predicted {layout.tps:,.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
