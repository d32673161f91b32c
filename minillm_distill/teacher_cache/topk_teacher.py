"""The teacher as training needs it from outside: top-k log-probabilities for given token ids.

A :class:`TopKTeacher` answers, for a batch of prompts and responses, each response token's top-k token ids and
log-probabilities at a temperature and the log of the rest of its mass (:class:`TeacherTopK`). The capture uses
it (:mod:`minillm_distill.teacher_cache.capture`), and it is the seam where a teacher outside the capturing
process plugs in: :class:`InProcessTeacher` is a loaded model, scored a chunk of tokens at a time;
:class:`~minillm_distill.teacher_cache.served_teacher.ServedTeacher` asks an OpenAI-compatible server's prompt
log-probs (vLLM's ``prompt_logprobs=k``). The same method is what the on-policy samplers, whose text does not exist
before training, would need to keep the teacher out of training memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from minillm_distill.rollout import RolloutBatch


@dataclass
class TeacherTopK:
    """Per valid response token, in row-major order of the batch's mask: ``ids`` ``[n, k]`` long, ``logprobs``
    ``[n, k]`` and ``tail`` ``[n]`` float32, at the temperature asked for; ``lengths`` the tokens of each row."""

    ids: torch.Tensor
    logprobs: torch.Tensor
    tail: torch.Tensor
    lengths: list[int]

    def rows(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(ids, logprobs, tail)`` of each row of the batch."""
        out, at = [], 0
        for n in self.lengths:
            out.append((self.ids[at : at + n], self.logprobs[at : at + n], self.tail[at : at + n]))
            at += n
        return out


class TopKTeacher(Protocol):
    """What training needs of a teacher it does not hold: the top-k of the responses it is shown."""

    def topk(self, batch: RolloutBatch, *, k: int, temperature: float, vocab_size: int) -> TeacherTopK: ...


def topk_rows(logits: torch.Tensor, temperature: float, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[n, V]`` logits -> (top-k ids ``[n, k]``, their log-probs ``[n, k]``, log of the rest's mass ``[n]``), all
    at ``temperature``, in float32 (the tail is a log-sum-exp over the other entries: exact, not 1 - sum)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    values, ids = logp.topk(k, dim=-1)
    rest = logp.scatter(-1, ids, float("-inf"))
    return ids, values, torch.logsumexp(rest, dim=-1)


class InProcessTeacher:
    """A loaded teacher model: one forward pass over prompt + response (none when the batch carries the teacher's
    hidden states or logits from decoding it, as a SeqKD capture's do), the logits of the first ``vocab_size``
    rows taken ``chunk_tokens`` tokens at a time (nothing vocabulary-sized outlives a chunk)."""

    def __init__(self, model: Any, *, chunk_tokens: int = 256) -> None:
        self.model, self.chunk_tokens = model, chunk_tokens

    def topk(self, batch: RolloutBatch, *, k: int, temperature: float, vocab_size: int) -> TeacherTopK:
        from minillm_distill.scoring.forward import teacher_scores

        with torch.no_grad():
            scores = teacher_scores(self.model, batch, chunk_tokens=self.chunk_tokens)
            flat = scores.flat()
            mask = batch.response_mask.bool()
            index = mask.reshape(-1).nonzero().flatten()
            parts = []
            for start in range(0, index.numel(), self.chunk_tokens):
                rows = scores.rows(flat, index[start : start + self.chunk_tokens])[:, :vocab_size]
                parts.append(topk_rows(rows, temperature, k))
        if not parts:
            empty = torch.zeros(0, k)
            return TeacherTopK(empty.long(), empty, torch.zeros(0), [0] * mask.size(0))
        return TeacherTopK(
            torch.cat([p[0] for p in parts]).cpu(),
            torch.cat([p[1] for p in parts]).cpu(),
            torch.cat([p[2] for p in parts]).cpu(),
            mask.sum(1).tolist(),
        )
