"""Reverse KL, KL(q_student || p_teacher) per token: mode-seeking (MiniLLM's objective, token level)."""

from __future__ import annotations

import torch

from minillm_distill.api import TokenDivergence
from minillm_distill.builtins.divergences._math import kl_from_logs, log_probs


class ReverseKL(TokenDivergence):
    name = "rkl"
    description = "reverse KL(q || p), student to teacher (mode-seeking)"

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return kl_from_logs(log_probs(student_logits), log_probs(teacher_logits))
