"""Forward KL, KL(p_teacher || q_student): mode-covering, the loss of classic word-level KD."""

from __future__ import annotations

import torch

from minillm_distill.api import TokenDivergence
from minillm_distill.builtins.divergences._math import kl_from_logs, log_probs


class ForwardKL(TokenDivergence):
    name = "fkl"
    description = "forward KL(p || q), teacher to student (word-level KD)"

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return kl_from_logs(log_probs(teacher_logits), log_probs(student_logits))
