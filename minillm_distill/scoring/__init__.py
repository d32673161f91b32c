"""Scoring, in one place: a model's forward pass over prompt + response keeps the final hidden states that
predict the response tokens and a handle on the output layer (:mod:`.forward`), and :func:`walk_tokens` turns
them into logits one chunk of tokens at a time for whatever consumes them (:mod:`.walk`): a divergence, the
MiniLLM terms, cross entropy, evaluation's KL. Nothing else in minillm builds vocabulary-sized tensors."""

from minillm_distill.scoring.forward import (
    output_head,
    response_logits,
    score_blocks,
    score_positions,
    score_responses,
    sequence_inputs,
)
from minillm_distill.scoring.walk import (
    ChunkFn,
    OutputHead,
    ResponseScores,
    TokenWalk,
    as_scores,
    chunk_tokens_for,
    walk_tokens,
)

__all__ = [
    "ChunkFn",
    "OutputHead",
    "ResponseScores",
    "TokenWalk",
    "as_scores",
    "chunk_tokens_for",
    "output_head",
    "response_logits",
    "score_blocks",
    "score_positions",
    "score_responses",
    "sequence_inputs",
    "walk_tokens",
]
