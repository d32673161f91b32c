"""Learning-rate schedules: linear warmup, then constant, cosine or linear decay to ``min_lr_ratio``."""

from __future__ import annotations

import math

from minillm_distill.recipe.schema import TrainSpec


def lr_factor(step: int, spec: TrainSpec) -> float:
    """Multiplier of ``spec.lr`` for optimizer step ``step`` (0-based)."""
    if spec.warmup_steps and step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    if spec.schedule == "constant":
        return 1.0
    span = max(spec.total_steps - spec.warmup_steps, 1)
    progress = min(max(step - spec.warmup_steps, 0) / span, 1.0)
    floor = spec.min_lr_ratio
    if spec.schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return floor + (1 - floor) * (1 - progress)
