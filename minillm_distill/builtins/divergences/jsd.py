"""Generalized Jensen-Shannon divergence of GKD (Agarwal et al., 2024).

With teacher p, student q and M = beta * p + (1 - beta) * q:
    JSD(beta) = beta * KL(p || M) + (1 - beta) * KL(q || M)      for 0 < beta < 1.
At the end points the mixture degenerates (both terms vanish), so, as GKD prescribes, beta = 0 is
*exactly* forward KL(p || q) and beta = 1 is *exactly* reverse KL(q || p). beta = 0.5 is the symmetric JSD.
"""

from __future__ import annotations

import torch
from pydantic import Field

from minillm_distill.api import TokenDivergence, TokenDivergenceParams
from minillm_distill.builtins.divergences._math import kl_from_logs, log_mixture, log_probs


class JSDParams(TokenDivergenceParams):
    beta: float = Field(0.5, ge=0, le=1, description="0 = forward KL, 1 = reverse KL, 0.5 = symmetric JSD")


class GeneralizedJSD(TokenDivergence):
    name = "jsd"
    description = "generalized JSD(beta) of GKD; beta=0 forward KL, beta=1 reverse KL"
    Params = JSDParams

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        beta = self.params.beta
        log_p, log_q = log_probs(teacher_logits), log_probs(student_logits)
        if beta == 0.0:
            return kl_from_logs(log_p, log_q)
        if beta == 1.0:
            return kl_from_logs(log_q, log_p)
        log_m = log_mixture(log_p, log_q, beta)
        return beta * kl_from_logs(log_p, log_m) + (1.0 - beta) * kl_from_logs(log_q, log_m)
