"""Cross entropy on the target tokens, -log q(y_t): supervised fine-tuning, no teacher."""

from __future__ import annotations

import torch

from minillm_distill.api import TokenDivergence, cross_entropy_per_token


class CrossEntropy(TokenDivergence):
    name = "sft"
    description = "cross entropy -log q(y_t) on the targets (no teacher)"
    needs_teacher = False

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return cross_entropy_per_token(student_logits, targets)
