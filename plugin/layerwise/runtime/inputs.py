"""The batch that every layout and the one-process reference see, deterministic per sequence.

Sequence i's prompt is drawn from (seed, i) alone, and its decode step t's input from (seed, i,
t), so a chunk holds the same values whatever the chunking: whole sequences ([seq, rows, hidden]:
gpt models; token ids [seq, rows] for a model with a vocabulary) or a run of tokens of the
flattened batch ([tokens, hidden]: dense models). Decode inputs are drawn rather than fed back
from the last stage (teacher forcing): the same work per step, and every layout decodes the same
tokens. A replica owns a contiguous block of sequences (RankAssignment.first_sequence). The
runtime makes the inputs before the clock starts, on the ranks of each replica's first stage.
"""

import torch

from layerwise.model.spec import ModelSpec
from layerwise.planner.assignment import RankAssignment
from layerwise.runtime.model import TORCH_DTYPES

PROMPT_STREAM, DECODE_STREAM = 7919, 7927  # seed offsets: prompts and decode tokens apart


def draw(stream: int, seed: int, index: int, shape, dtype, device) -> torch.Tensor:
    """N(0, 1) values of item `index` of a stream, the same on any rank of the same device kind."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed + stream) * 1_000_003 + index)
    return torch.randn(shape, generator=generator, device=device).to(dtype)


def draw_ids(stream: int, seed: int, index: int, length: int, vocab: int, device) -> torch.Tensor:
    """`length` token ids, uniform over the vocabulary, of item `index` of a stream."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed + stream) * 1_000_003 + index)
    return torch.randint(vocab, (length,), generator=generator, device=device)


def prompt(model: ModelSpec, assignment: RankAssignment, sequence: int, device) -> torch.Tensor:
    """Sequence `sequence`'s prompt: [seq_len] token ids, or [seq_len, hidden] hidden states
    (the assignment gives only the run's seq_len, seed and dtype: any rank draws the same)."""
    seq_len, seed = assignment.seq_len, assignment.seed
    if model.vocab_size:
        return draw_ids(PROMPT_STREAM, seed, sequence, seq_len, model.vocab_size, device)
    dtype = TORCH_DTYPES[assignment.dtype]
    return draw(PROMPT_STREAM, seed, sequence, (seq_len, model.hidden), dtype, device)


def _gpt_chunk(
    model: ModelSpec, assignment: RankAssignment, first: int, rows: int, device
) -> torch.Tensor:
    """Sequences [first, first + rows) side by side: [seq, rows] ids or [seq, rows, hidden]."""
    return torch.stack(
        [prompt(model, assignment, first + row, device) for row in range(rows)], dim=1
    )


def _dense_chunks(
    model: ModelSpec, assignment: RankAssignment, count: int, dtype, device
) -> list[torch.Tensor]:
    """Tokens [c * chunk_tokens, (c + 1) * chunk_tokens) of the replica's flattened batch, drawn
    one sequence at a time (a sequence cut by a chunk boundary is drawn once, kept for the next)."""
    seq_len, hidden, seed = assignment.seq_len, model.hidden, assignment.seed
    first, chunk_tokens = assignment.first_sequence, assignment.chunk_tokens
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
    model: ModelSpec, assignment: RankAssignment, device, count: int | None = None
) -> list[torch.Tensor]:
    """The first `count` (default: all) prefill chunks of the assignment's replica, in order."""
    dtype = TORCH_DTYPES[assignment.dtype]
    count = assignment.micro_batches if count is None else count
    if model.kind == "dense":
        return _dense_chunks(model, assignment, count, dtype, device)
    first, rows = assignment.first_sequence, assignment.micro_batch_rows
    return [_gpt_chunk(model, assignment, first + c * rows, rows, device) for c in range(count)]


def decode_input(
    model: ModelSpec, assignment: RankAssignment, sequence: int, step: int, device
) -> torch.Tensor:
    """Sequence `sequence`'s input at decode step `step`: one token id, or [hidden]."""
    seed = assignment.seed
    index = sequence * max(1, assignment.decode_steps) + step
    if model.vocab_size:
        return draw_ids(DECODE_STREAM, seed, index, 1, model.vocab_size, device)[0]
    dtype = TORCH_DTYPES[assignment.dtype]
    return draw(DECODE_STREAM, seed, index, (model.hidden,), dtype, device)


def decode_tokens(
    model: ModelSpec, assignment: RankAssignment, device, step: int = 0
) -> list[torch.Tensor]:
    """Decode step `step`'s inputs of the assignment's replica, split into the plan's decode
    micro-batches: [rows, hidden] (dense models), [1, rows, hidden] or [1, rows] ids (gpt)."""
    first = assignment.first_sequence
    tokens = torch.stack(
        [
            decode_input(model, assignment, first + s, step, device)
            for s in range(assignment.sequences)
        ]
    )
    if model.kind == "dense":
        return list(tokens.chunk(assignment.decode_micro_batches))
    return list(tokens.unsqueeze(0).chunk(assignment.decode_micro_batches, dim=1))


def token_rows(output: torch.Tensor, kind: str) -> torch.Tensor:
    """A chunk's output as [tokens, hidden] in batch order (sequence by sequence), so outputs of
    layouts that chunk differently can be compared row for row."""
    if kind == "dense":
        return output.reshape(-1, output.shape[-1])
    return output.transpose(0, 1).reshape(-1, output.shape[-1])
