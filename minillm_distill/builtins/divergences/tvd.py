"""Total variation distance, 0.5 * sum_v |p_v - q_v| (bounded in [0, 1])."""

from __future__ import annotations

import torch

from minillm_distill.api import TokenDivergence


class TotalVariation(TokenDivergence):
    name = "tvd"
    description = "total variation distance 0.5 * |p - q|_1"

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        p = torch.softmax(teacher_logits, dim=-1)
        q = torch.softmax(student_logits, dim=-1)
        return 0.5 * (p - q).abs().sum(dim=-1)
