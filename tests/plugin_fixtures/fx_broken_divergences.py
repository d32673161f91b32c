"""Divergences with the bugs ``minillm plugins check`` exists to catch (and one that is fine).

* ``fixture_topk_kl``: KL(p_k || q) over the teacher's top-k tokens, renormalised; written naively, the
  zero probabilities outside the top k give 0 * log 0 = nan, so every declared ``k >= 1`` fails while the
  default ``k = 0`` (the full vocabulary) is correct.
* ``fixture_unclamped_kl``: KL(p || q) from unclamped ``log_softmax``: correct for every finite logit, nan at
  ``-inf`` logits (0 * (-inf - -inf)).
* ``fixture_shifted_kl``: KL + 0.01, never 0 at equal distributions.
* ``fixture_naive_reinforce``: a sequence-level REINFORCE loss whose log-probs come from ``softmax(...).log()``
  (nan gradients once a masked vocabulary entry is -inf).
* ``fixture_local_mean``: the same loss with correct log-probs, but divided by the micro-batch's own token
  count instead of the step's (``norm.tokens``): the step's loss then depends on how it is split.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from minillm_distill.api import SequenceDivergence, TokenDivergence, TokenDivergenceParams, hookimpl, walk_tokens


def _logs(logits: torch.Tensor) -> torch.Tensor:
    """log-softmax with -inf clamped to a finite floor, so 0 * (log a - log b) stays 0."""
    return torch.log_softmax(logits, dim=-1).clamp(min=-1e30)


class TopKParams(TokenDivergenceParams):
    check_values: ClassVar[dict[str, Any]] = {"k": (0, 1, 3)}
    k: int = Field(0, ge=0, description="teacher tokens kept (0 = all)")


class TopKKL(TokenDivergence):
    name = "fixture_topk_kl"
    Params = TopKParams

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        logq = _logs(student_logits)
        if not self.params.k:  # the full vocabulary: correct
            logp = _logs(teacher_logits)
            return (logp.exp() * (logp - logq)).sum(-1)
        p = teacher_logits.softmax(-1)
        kth = p.topk(self.params.k, dim=-1).values[..., -1:]
        p = torch.where(p >= kth, p, torch.zeros_like(p))
        p = p / p.sum(-1, keepdim=True)
        return (p * (p.log() - logq)).sum(-1)  # the bug: 0 * log 0 = nan outside the top k


class UnclampedKL(TokenDivergence):
    name = "fixture_unclamped_kl"

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        logp, logq = teacher_logits.log_softmax(-1), student_logits.log_softmax(-1)
        return (logp.exp() * (logp - logq)).sum(-1)


class ShiftedKL(TokenDivergence):
    name = "fixture_shifted_kl"

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        logp, logq = _logs(teacher_logits), _logs(student_logits)
        return (logp.exp() * (logp - logq)).sum(-1) + 0.01


class NaiveReinforce(SequenceDivergence):
    name = "fixture_naive_reinforce"

    def prepare(self, batches, reduce):
        out = []
        for b in batches:
            mask = b.response_mask.bool()
            reward = torch.where(mask, b.teacher_logprobs - b.behaviour_logprobs, torch.zeros_like(b.teacher_logprobs))
            returns = reward.flip(1).cumsum(1).flip(1)
            out.append({"returns": returns})
        return out, {}

    def loss(self, student, teacher, batch, prepared, norm):
        mask = batch.response_mask.bool()

        def logq(s, t, tg):
            return s.softmax(-1).log().gather(-1, tg[:, None])[:, 0]

        walk = walk_tokens(student, None, batch.response_ids, mask, logq)
        returns = prepared["returns"].reshape(-1)[walk.index]
        return -(returns * walk.values).sum() / norm.tokens, {}


class LocalMean(NaiveReinforce):
    name = "fixture_local_mean"

    def loss(self, student, teacher, batch, prepared, norm):
        mask = batch.response_mask.bool()

        def logq(s, t, tg):
            return s.log_softmax(-1).gather(-1, tg[:, None])[:, 0]

        walk = walk_tokens(student, None, batch.response_ids, mask, logq)
        returns = prepared["returns"].reshape(-1)[walk.index]
        old = batch.behaviour_logprobs.reshape(-1)[walk.index]
        return -(returns * torch.exp(walk.values - old)).sum() / mask.sum(), {}


@hookimpl
def register_divergences(register):
    for cls in (TopKKL, UnclampedKL, ShiftedKL, NaiveReinforce, LocalMean):
        register(cls)
