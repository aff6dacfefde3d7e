"""The batch that every layout and the one-process reference see, deterministic per sequence.

Sequence i's prompt is drawn from (seed, i) alone, so a chunk holds the same values whatever the
chunking: whole sequences ([seq, rows, hidden]: gpt models, and every baseline chunk of a dense
model) or a run of tokens of the flattened batch ([tokens, hidden]: dense models). A replica owns
a contiguous block of sequences. The runtime makes a batch's inputs before the clock starts, on
the ranks of each replica's first stage.
"""

import torch

from layerwise.config import RunConfig
from layerwise.layouts import Layout
from layerwise.runtime.model import TORCH_DTYPES

PROMPT_STREAM, DECODE_STREAM = 7919, 7927  # seed offsets: prompts and decode tokens apart


def draw(stream: int, seed: int, index: int, shape, dtype, device) -> torch.Tensor:
    """N(0, 1) values of item `index` of a stream, the same on any rank of the same device kind."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed + stream) * 1_000_003 + index)
    return torch.randn(shape, generator=generator, device=device).to(dtype)


def first_sequence(config: RunConfig, layout: Layout, replica: int) -> int:
    return replica * (config.workload.batch_size // layout.replicas)


def _gpt_chunk(config: RunConfig, first: int, rows: int, dtype, device) -> torch.Tensor:
    seq_len, hidden = config.workload.seq_len, config.model.hidden
    chunk = torch.empty(seq_len, rows, hidden, dtype=dtype, device=device)
    for row in range(rows):
        chunk[:, row] = draw(
            PROMPT_STREAM, config.run.seed, first + row, (seq_len, hidden), dtype, device
        )
    return chunk


def _dense_chunks(
    config: RunConfig, first: int, chunk_tokens: int, count: int, dtype, device
) -> list[torch.Tensor]:
    """Tokens [c * chunk_tokens, (c + 1) * chunk_tokens) of the replica's flattened batch, drawn
    one sequence at a time (a sequence cut by a chunk boundary is drawn once, kept for the next)."""
    seq_len, hidden, seed = config.workload.seq_len, config.model.hidden, config.run.seed
    drawn_index, drawn = -1, None
    chunks = []
    for chunk in range(count):
        start, stop = chunk * chunk_tokens, (chunk + 1) * chunk_tokens
        parts = []
        for sequence in range(start // seq_len, (stop - 1) // seq_len + 1):
            if sequence != drawn_index:
                drawn_index = sequence
                drawn = draw(
                    PROMPT_STREAM, seed, first + sequence, (seq_len, hidden), dtype, device
                )
            offset = sequence * seq_len
            parts.append(drawn[max(start, offset) - offset : min(stop, offset + seq_len) - offset])
        chunks.append(torch.cat(parts) if len(parts) > 1 else parts[0].clone())
    return chunks


def prefill_chunks(
    config: RunConfig, layout: Layout, replica: int, device, count: int | None = None
) -> list[torch.Tensor]:
    """The first `count` (default: all) prefill chunks of `replica`, in order."""
    dtype = TORCH_DTYPES[config.run.dtype]
    count = layout.micro_batches if count is None else count
    first = first_sequence(config, layout, replica)
    if config.model.kind == "dense":
        return _dense_chunks(config, first, layout.chunk_tokens, count, dtype, device)
    rows = layout.micro_batch_rows
    return [_gpt_chunk(config, first + c * rows, rows, dtype, device) for c in range(count)]


def decode_tokens(config: RunConfig, layout: Layout, replica: int, device) -> list[torch.Tensor]:
    """One new token per sequence of `replica` ([rows, hidden], dense models), split into the
    plan's decode micro-batches."""
    dtype = TORCH_DTYPES[config.run.dtype]
    sequences = config.workload.batch_size // layout.replicas
    first = first_sequence(config, layout, replica)
    tokens = torch.stack(
        [
            draw(DECODE_STREAM, config.run.seed, first + s, (config.model.hidden,), dtype, device)
            for s in range(sequences)
        ]
    )
    return list(tokens.chunk(layout.decode_micro_batches))


def token_rows(output: torch.Tensor, kind: str) -> torch.Tensor:
    """A chunk's output as [tokens, hidden] in batch order (sequence by sequence), so outputs of
    layouts that chunk differently can be compared row for row."""
    if kind == "dense":
        return output.reshape(-1, output.shape[-1])
    return output.transpose(0, 1).reshape(-1, output.shape[-1])
