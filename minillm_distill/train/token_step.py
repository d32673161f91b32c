"""A step of a token-level divergence: fresh rollouts of ``grad_accum`` micro-batches, each scored and its
loss (the divergence, mixed with the cross entropy when ``train.kd_ratio`` < 1) walked in chunks and
backpropagated, then one optimizer step."""

from __future__ import annotations

from typing import Any

import torch

from minillm_distill.divergence import Divergence, TokenDivergence, cross_entropy_per_token, divergence_fn
from minillm_distill.plugin_blame import plugin_origin
from minillm_distill.scoring.walk import ResponseScores, walk_tokens
from minillm_distill.train import distributed as dist_utils
from minillm_distill.train.cached_teacher import cached_loss_sum, cached_rows
from minillm_distill.train.context import (
    StepContext,
    backward_micro,
    common_metrics,
    empty_loss,
    sample_rollouts,
    score_rollout,
    step_grad_norm,
)


def token_step(ctx: StepContext, step: int) -> dict[str, Any]:
    engine = ctx.engine
    rollouts = sample_rollouts(ctx, step, ctx.train.grad_accum, step)
    (global_tokens,) = dist_utils.all_reduce_sum([float(sum(int(r.response_mask.sum()) for r in rollouts))], ctx.device)
    global_tokens = max(global_tokens, 1.0)
    lr = float(engine.get_lr()[0])
    kd_ratio = ctx.train.kd_ratio
    loss_sum, bad = 0.0, False
    origin = plugin_origin(ctx.outputs.plugins, "divergence", ctx.divergence.name, ctx.divergence)
    for i, r in enumerate(rollouts):
        if ctx.cache is not None and ctx.divergence.needs_teacher:  # the teacher's top-k from its cache
            student, _ = score_rollout(ctx, r, False)
            settings = ctx.cache.settings
            packed = cached_rows(ctx.cache, r, ctx.device)
            total = cached_loss_sum(
                ctx.divergence, student, packed, settings.k, settings.vocab_size, r.response_ids,
                r.response_mask.bool(), kd_ratio, origin=origin,
            )  # fmt: skip
        else:
            student, teacher = score_rollout(ctx, r, ctx.divergence.needs_teacher)
            total = token_loss_sum(
                ctx.divergence, student, teacher, r.response_ids, r.response_mask.bool(), kd_ratio, origin=origin
            )
        loss = total / global_tokens
        bad = backward_micro(ctx, loss, empty_loss(student), i == len(rollouts) - 1, bad)
        if not bad or ctx.skip_reason == "non-finite gradient":  # that loss was finite: report it
            loss_sum += loss.item()
    (loss_global,) = dist_utils.all_reduce_sum([loss_sum], ctx.device)
    return {
        "loss": float("nan") if ctx.skip_reason == "non-finite loss" else loss_global,
        "lr": lr,
        "grad_norm": step_grad_norm(ctx, bad),
        **common_metrics(ctx, rollouts, global_tokens),
        "skipped": bad,
    }


def token_loss_sum(
    divergence: Divergence,
    student: ResponseScores,
    teacher: ResponseScores | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    kd_ratio: float = 1.0,
    *,
    origin: str | None = None,
) -> torch.Tensor:
    """Sum over valid tokens of the divergence, mixed with the cross entropy when ``kd_ratio`` < 1, in one
    chunk walk (the student's logits of each chunk computed once for both). ``origin`` names the divergence's
    plugin in the error its first-call check raises."""
    assert isinstance(divergence, TokenDivergence)
    per_token = divergence_fn(divergence, origin)
    if not divergence.needs_teacher:
        teacher = None
    temperature = float(getattr(divergence.params, "temperature", 1.0))
    if kd_ratio >= 1.0:
        return walk_tokens(student, teacher, targets, mask, per_token, temperature=temperature).values.sum()
    if temperature != 1.0 or (teacher is not None and teacher.vocab_size != student.vocab_size):
        # the cross entropy is over the student's own vocabulary at temperature 1: its own walk
        div = walk_tokens(student, teacher, targets, mask, per_token, temperature=temperature).values.sum()
        ce = walk_tokens(student, None, targets, mask, _CROSS_ENTROPY.per_token).values.sum()
        return kd_ratio * div + (1.0 - kd_ratio) * ce

    def both(s: torch.Tensor, t: torch.Tensor | None, tg: torch.Tensor) -> torch.Tensor:
        return kd_ratio * per_token(s, t, tg) + (1.0 - kd_ratio) * cross_entropy_per_token(s, tg)

    return walk_tokens(student, teacher, targets, mask, both).values.sum()


class _TargetCrossEntropy(TokenDivergence):
    """Cross entropy on the response tokens, mixed in when ``train.kd_ratio`` < 1."""

    name = "cross_entropy"
    needs_teacher = False

    def per_token(self, student_logits, teacher_logits, targets):
        return cross_entropy_per_token(student_logits, targets)


_CROSS_ENTROPY = _TargetCrossEntropy()
