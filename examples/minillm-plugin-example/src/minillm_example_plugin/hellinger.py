"""Squared Hellinger distance between teacher p and student q, per token.

    H^2(p, q) = 1 - sum_v sqrt(p_v * q_v) = 1/2 * sum_v (sqrt(p_v) - sqrt(q_v))^2

It is symmetric, bounded in [0, 1] and zero exactly when p = q. The Bhattacharyya coefficient
sum_v sqrt(p_v q_v) is computed in log space, exp((log p_v + log q_v) / 2), which stays finite for
vocabulary rows with -inf logits.
"""

from __future__ import annotations

import torch

from minillm_distill.api import TokenDivergence, TokenDivergenceParams

# log-probabilities of -inf logits are clamped here so that -inf + -inf stays a number
_LOG_FLOOR = -1e30


class HellingerParams(TokenDivergenceParams):
    """Recipe options of ``hellinger``: only the inherited ``temperature`` (applied to both logit tensors).

    Add pydantic fields here for options of your own, e.g. ``alpha: float = Field(0.1, ge=0, le=1)``;
    a recipe's ``divergence: {name: hellinger, ...}`` keys are validated against this model.
    """


class Hellinger(TokenDivergence):
    name = "hellinger"
    description = "squared Hellinger distance 1 - sum_v sqrt(p_v q_v), symmetric, in [0, 1]"
    Params = HellingerParams

    def per_token(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        assert teacher_logits is not None  # needs_teacher is True: the core never passes None
        log_q = torch.log_softmax(student_logits, dim=-1).clamp(min=_LOG_FLOOR)
        log_p = torch.log_softmax(teacher_logits, dim=-1).clamp(min=_LOG_FLOOR)
        bhattacharyya = torch.exp(0.5 * (log_p + log_q)).sum(dim=-1)
        # rounding can push the coefficient a hair above 1; a divergence is never negative
        return (1.0 - bhattacharyya).clamp(min=0.0)
