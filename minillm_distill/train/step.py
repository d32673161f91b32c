"""One optimizer step: rollout (sampler) -> score (forward passes) -> loss -> backward -> step.

Token-level divergences sample fresh rollouts every step (:mod:`minillm_distill.train.token_step`). Sequence-level
divergences (MiniLLM) sample a rollout *phase* buffer, let the divergence prepare it (rewards, returns,
advantages) once, then train ``ppo_epochs`` passes over it (:mod:`minillm_distill.train.phase_step`); what both share
is :mod:`minillm_distill.train.context`.
"""

from __future__ import annotations

from typing import Any

import torch

from minillm_distill.divergence import SequenceDivergence
from minillm_distill.rollout import PhaseBuffer
from minillm_distill.scoring.forward import teacher_scores
from minillm_distill.seeds import derive_seed
from minillm_distill.train import distributed as dist_utils
from minillm_distill.train.context import StepContext
from minillm_distill.train.phase_step import phase_layout, phase_logits_share, phase_step
from minillm_distill.train.token_step import token_loss_sum, token_step

__all__ = [
    "PhaseBuffer",
    "StepContext",
    "derive_seed",
    "phase_layout",
    "phase_logits_share",
    "teacher_scores",
    "token_loss_sum",
    "train_step",
]


def train_step(ctx: StepContext, step: int) -> dict[str, Any]:
    """Runs optimizer step ``step`` (0-based) and returns its metrics (identical on every rank)."""
    torch.manual_seed(derive_seed(ctx.seed, step, dist_utils.rank(), 0))
    if isinstance(ctx.divergence, SequenceDivergence):
        return phase_step(ctx, step)
    return token_step(ctx, step)
