"""Row-wise helpers shared by the built-in divergences (float32 ``[N, V]`` inputs)."""

from __future__ import annotations

import math

import torch

# -inf log-probs (a masked vocabulary row) would make 0 * -inf = nan; clamp to a very negative finite value.
LOG_FLOOR = -1e30


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).clamp(min=LOG_FLOOR)


def kl_from_logs(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a || b) = sum_v a_v (log a_v - log b_v), per row."""
    return (log_a.exp() * (log_a - log_b)).sum(dim=-1)


def log_mixture(log_a: torch.Tensor, log_b: torch.Tensor, weight_a: float) -> torch.Tensor:
    """log(weight_a * a + (1 - weight_a) * b), computed stably; weight_a in (0, 1)."""
    stacked = torch.stack([log_a + math.log(weight_a), log_b + math.log1p(-weight_a)], dim=0)
    return torch.logsumexp(stacked, dim=0).clamp(min=LOG_FLOOR)
