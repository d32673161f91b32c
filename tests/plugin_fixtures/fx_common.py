"""Minimal registrable classes shared by the fixture plugins."""

from __future__ import annotations

import torch

from minillm_distill.api import TokenDivergence


class ZeroDivergence(TokenDivergence):
    """Not a useful divergence; only a class with a name for the registry tests."""

    name = "fixture_zero"
    description = "always zero (test fixture)"

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return student_logits.new_zeros(student_logits.shape[0])
