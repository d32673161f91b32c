"""Adaptive KL (Wu et al., 2024, "Rethinking Kullback-Leibler Divergence in Knowledge Distillation for
Large Language Models").

The teacher's vocabulary is split per token into a *head* (tokens in descending teacher probability
whose cumulative teacher probability, themselves included, is at most ``mu``; the top token is always in
it) and a *tail* (the rest). With
gap_head = sum_head |p - q| and gap_tail = sum_tail |p - q| (computed without gradient),
    AKL = gap_head / (gap_head + gap_tail) * FKL + gap_tail / (gap_head + gap_tail) * RKL,
so forward KL weighs in where the student misses the teacher's head and reverse KL where it misplaces
mass in the tail. When p = q both gaps are 0 and so is the value.
"""

from __future__ import annotations

import torch
from pydantic import Field

from minillm_distill.api import TokenDivergence, TokenDivergenceParams
from minillm_distill.builtins.divergences._math import kl_from_logs, log_probs


class AKLParams(TokenDivergenceParams):
    mu: float = Field(0.5, gt=0, le=1, description="cumulative teacher probability that defines the head")


class AdaptiveKL(TokenDivergence):
    name = "akl"
    description = "adaptive KL: head/tail-gap weighted forward + reverse KL (Wu et al. 2024)"
    Params = AKLParams

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        log_p, log_q = log_probs(teacher_logits), log_probs(student_logits)
        with torch.no_grad():
            p, q = log_p.exp(), log_q.exp()
            p_sorted, order = p.sort(dim=-1, descending=True)
            gap = (p_sorted - q.gather(-1, order)).abs()
            head = p_sorted.cumsum(dim=-1) <= self.params.mu
            head[..., 0] = True
            gap_head = (gap * head).sum(dim=-1)
            gap_tail = (gap * ~head).sum(dim=-1)
            total = gap_head + gap_tail
            safe = torch.where(total > 0, total, torch.ones_like(total))
            w_head = torch.where(total > 0, gap_head / safe, torch.zeros_like(total))
            w_tail = torch.where(total > 0, gap_tail / safe, torch.zeros_like(total))
        return w_head * kl_from_logs(log_p, log_q) + w_tail * kl_from_logs(log_q, log_p)
