"""A DeepSpeed pipeline training script with the one-line swap to LayerwisePipelineModule.

A tiny language model as DeepSpeed users write one: a tied embedding (TiedLayerSpec, reused as
the LM head through forward_fn), LayerSpecs, and plain functions in the layer list. It trains a
few steps with `engine.train_batch` and evaluates with `engine.eval_batch`, then prints the
losses. The only line that differs between stock DeepSpeed and layerwise is the class:

    module = PipelineModule(layers, num_stages=2, loss_fn=loss, partition_method="parameters")
    module = LayerwisePipelineModule(layers, num_stages=2, loss_fn=loss, partition_method="profile",
                                     probe=first_micro_batch_ids)

Run (2 CPU ranks, gloo):
    torchrun --nproc_per_node 2 examples/pipeline_swap.py --module layerwise --method profile
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

VOCAB, HIDDEN, SEQ, MICRO_BATCH, MICRO_BATCHES = 64, 32, 16, 2, 4


class Embedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, HIDDEN)

    def forward(self, ids):
        return self.embedding(ids)


def lm_head(embedding: Embedding, hidden):
    """The tied embedding used as the output projection."""
    return hidden @ embedding.embedding.weight.T


def halve(hidden):
    return hidden * 0.5


def layer_list():
    from deepspeed.pipe import LayerSpec, TiedLayerSpec

    return [
        TiedLayerSpec("embed", Embedding, tied_weight_attr="embedding.weight"),
        LayerSpec(nn.Linear, HIDDEN, 4 * HIDDEN),
        torch.tanh,
        LayerSpec(nn.Linear, 4 * HIDDEN, HIDDEN),
        halve,
        LayerSpec(nn.Linear, HIDDEN, HIDDEN),
        TiedLayerSpec("embed", Embedding, forward_fn=lm_head, tied_weight_attr="embedding.weight"),
    ]


def loss_fn(logits, labels):
    return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1))


def batches(seed: int):
    """Micro-batches of (token ids, next-token labels), the same on every rank."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        ids = torch.randint(VOCAB, (MICRO_BATCH, SEQ + 1), generator=generator)
        yield ids[:, :-1], ids[:, 1:]


def build(module: str, stages: int, **partition):
    """The pipeline module: stock PipelineModule or LayerwisePipelineModule, same arguments."""
    from deepspeed.pipe import PipelineModule

    from layerwise.runtime.pipe import LayerwisePipelineModule

    cls = PipelineModule if module == "stock" else LayerwisePipelineModule
    return cls(layer_list(), stages, loss_fn=loss_fn, seed_layers=True, seed_fn=seed, **partition)


def seed(value) -> None:
    """Each layer's initial weights from its index alone, whatever the placement (DeepSpeed's
    default seed_fn refuses the numpy integers its 'parameters' split yields)."""
    torch.manual_seed(int(value))


def train(pipeline, steps: int, seed: int = 0) -> dict:
    """`steps` train_batch calls with SGD, then one eval_batch; losses and the tied weight."""
    import deepspeed

    config = {
        "train_micro_batch_size_per_gpu": MICRO_BATCH,
        "gradient_accumulation_steps": MICRO_BATCHES,
        "train_batch_size": MICRO_BATCH * MICRO_BATCHES,
        "steps_per_print": 10**9,
    }
    optimizer = torch.optim.SGD([p for p in pipeline.parameters() if p.requires_grad], lr=0.5)
    engine, *_ = deepspeed.initialize(model=pipeline, optimizer=optimizer, config=config)
    start = tied_weight(pipeline)
    data = batches(seed)
    losses = [float(engine.train_batch(data_iter=data)) for _ in range(steps)]
    evaluated = float(engine.eval_batch(data_iter=batches(seed + 1)))
    return {
        "parts": [int(part) for part in pipeline.parts],
        "losses": losses,
        "eval_loss": evaluated,
        "tied_weight_start": start,
        "tied_weight": tied_weight(pipeline),
    }


def tied_weight(pipeline) -> list[float] | None:
    """This stage's copy of the tied embedding, if it holds one."""
    if "embed" not in pipeline.tied_modules:
        return None
    return pipeline.tied_modules["embed"].embedding.weight.detach().flatten().tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--module", choices=["stock", "layerwise"], default="layerwise")
    parser.add_argument("--method", default="parameters")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        from layerwise.runtime.compat.cpu_mock import apply_cpu_mock_patches

        apply_cpu_mock_patches()
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    torch.manual_seed(0)
    extra = {"probe": next(batches(0))[0]} if args.method == "profile" else {}
    pipeline = build(args.module, 2, partition_method=args.method, **extra)
    result = train(pipeline, args.steps)
    if int(os.environ.get("RANK", 0)) == deepspeed.comm.get_world_size() - 1:
        result.pop("tied_weight")
        result.pop("tied_weight_start")
        print(json.dumps({"module": args.module, "method": args.method, **result}))


if __name__ == "__main__":
    main()
