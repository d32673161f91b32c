"""Skew KL divergences of DistiLLM (Ko et al., 2024), true-divergence form (entropy term included).

    sfkl(alpha) = KL(p || alpha * p + (1 - alpha) * q)
    srkl(alpha) = KL(q || alpha * q + (1 - alpha) * p)
alpha = 0 recovers plain forward / reverse KL; DistiLLM's default is alpha = 0.1.
"""

from __future__ import annotations

import torch
from pydantic import Field

from minillm_distill.api import TokenDivergence, TokenDivergenceParams
from minillm_distill.builtins.divergences._math import kl_from_logs, log_mixture, log_probs


class SkewParams(TokenDivergenceParams):
    alpha: float = Field(0.1, ge=0, lt=1, description="skew: weight of the first distribution in the mixture")


def _skewed(log_a: torch.Tensor, log_b: torch.Tensor, alpha: float) -> torch.Tensor:
    """KL(a || alpha * a + (1 - alpha) * b)."""
    log_m = log_b if alpha == 0.0 else log_mixture(log_a, log_b, alpha)
    return kl_from_logs(log_a, log_m)


class SkewForwardKL(TokenDivergence):
    name = "sfkl"
    description = "skew forward KL(p || a p + (1-a) q) (DistiLLM)"
    Params = SkewParams

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return _skewed(log_probs(teacher_logits), log_probs(student_logits), self.params.alpha)


class SkewReverseKL(TokenDivergence):
    name = "srkl"
    description = "skew reverse KL(q || a q + (1-a) p) (DistiLLM)"
    Params = SkewParams

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return _skewed(log_probs(student_logits), log_probs(teacher_logits), self.params.alpha)
