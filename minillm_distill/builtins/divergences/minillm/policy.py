"""The per-token terms of the MiniLLM loss: student log-probs of the sampled tokens, the exact single-step
reverse KL over the vocabulary, and the PPO-clipped importance-weighted policy-gradient term.

Vocabulary-sized work happens in float32 chunks of valid tokens computed from the final hidden states and
recomputed in backward (:func:`minillm_distill.api.walk_tokens`), so no ``[B, T, V]`` tensor ever exists.
"""

from __future__ import annotations

from typing import Any

import torch

from minillm_distill.api import ResponseScores, as_scores, walk_tokens
from minillm_distill.builtins.divergences._math import LOG_FLOOR, log_probs


def _chunk_terms(
    student: torch.Tensor, teacher: torch.Tensor | None, targets: torch.Tensor, teacher_normalised: bool = False
) -> torch.Tensor:
    """``[n, 2]``: log q(target) and KL(q || p) (0 without a teacher) of ``n`` rows of float32 logits.
    ``teacher_normalised``: the teacher's rows are already log-probabilities (no log-softmax of them)."""
    if teacher is not None:
        return _TargetAndKL.apply(student, teacher.detach(), targets.long(), teacher_normalised)
    logq = log_probs(student)
    target_lp = logq.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    return torch.stack([target_lp, torch.zeros_like(target_lp)], dim=-1)


class _TargetAndKL(torch.autograd.Function):
    """log q(target) and KL(q || p) of a chunk, with their gradient with respect to the student's logits z
    written out, so forward makes three new vocabulary-sized tensors (the two log-softmaxes and the KL's
    product; the rest is done in place) and backward none, where the autograd composition makes one per op
    (each one fresh memory the system must fault in; ``benchmarks/minillm_terms.py`` times the two). When the
    teacher's rows are already log-probabilities (kept by a teacher-mixed decode, which computed them anyway),
    its log-softmax is skipped and d is written into a new tensor, leaving the kept rows, read by every PPO
    epoch, untouched.

    With q = softmax(z), d = log q - log p and KL = sum_v q_v d_v: d log q(y) / dz = onehot(y) - q and
    d KL / dz = q * (d - KL), so for upstream gradients (g1, g2) of the two outputs
    dz = q * (g2 d - (g2 KL + g1)) + g1 onehot(y). Log-probs are floored at -1e30 (as :func:`log_probs`), so a
    row with ``-inf`` logits gives q = 0 there and no nan; a target whose log-prob is at the floor gets no
    gradient, as through the floor's clamp."""

    @staticmethod
    def forward(
        ctx: Any, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, teacher_normalised: bool
    ) -> torch.Tensor:
        logq = torch.log_softmax(student, dim=-1).clamp_(min=LOG_FLOOR)
        if teacher_normalised:
            # log q - max(log p, floor) in one pass: min(log q - log p, log q - floor), where log q - floor is
            # -floor in float32 for every log q above the floor (and where log q is at the floor, q = 0)
            diff = torch.sub(logq, teacher).clamp_(max=-LOG_FLOOR)
        else:
            diff = torch.log_softmax(teacher, dim=-1).clamp_(min=LOG_FLOOR)
            diff.neg_().add_(logq)  # log q - log p, in the teacher's buffer
        target_lp = logq.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        q = logq.exp_()  # q, in log q's buffer
        kl = (q * diff).sum(dim=-1)  # one temporary: a dot product (einsum) accumulates less accurately
        ctx.save_for_backward(q, diff, targets, target_lp, kl)
        return torch.stack([target_lp, kl], dim=-1)

    @staticmethod
    @torch.autograd.function.once_differentiable  # no graph of the gradient: a double backward fails loudly
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        if getattr(ctx, "spent", False):
            raise RuntimeError("minillm's chunk terms: backward reuses its buffers and runs once per forward")
        ctx.spent = True
        q, diff, targets, target_lp, kl = ctx.saved_tensors
        g1 = torch.where(target_lp > LOG_FLOOR, grad[:, 0], torch.zeros_like(grad[:, 0]))  # as the floor's clamp
        g2 = grad[:, 1]
        # in diff's buffer (backward runs once per forward; a recomputed chunk runs both again), three passes:
        # q * (g2 d - (g2 KL + g1)), the per-row constant folded first
        dz = diff.mul_(g2.unsqueeze(-1)).sub_((g2 * kl + g1).unsqueeze(-1)).mul_(q)
        dz.scatter_add_(1, targets.unsqueeze(-1), g1.unsqueeze(-1).to(dz.dtype))
        return dz, None, None, None


def token_terms(
    student: ResponseScores | torch.Tensor,
    teacher: ResponseScores | torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    with_kl: bool = True,
    chunk_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the valid positions of ``mask`` (row-major order): their flat indices, the student's log-prob of the
    target token, and the exact reverse KL(q(.|y<t) || p(.|y<t)) over the vocabulary (teacher detached), in one
    chunk walk over the scores (:func:`walk_tokens`: logits from hidden states chunk by chunk, recomputed in
    backward).

    Both distributions are normalised over the vocabulary rows the two models share (``[:min(V_s, V_t)]``),
    the same rows the samplers draw from and score behaviour log-probs over. ``with_kl=False`` skips the KL
    (returned as zeros) while still using the teacher's width.
    """

    s_given, t_given = as_scores(student), as_scores(teacher)
    assert s_given is not None
    # kept log-probabilities are used as they are only when the walk reads all their rows (the walk cuts both
    # to the narrower vocabulary; a cut row set is no longer normalised) at temperature 1 (token_terms' walk)
    normalised = (
        t_given is not None
        and t_given.normalised
        and t_given.logits is not None
        and t_given.logits.size(-1) == t_given.vocab_size <= s_given.vocab_size
    )

    def fn(s: torch.Tensor, t: torch.Tensor | None, tg: torch.Tensor) -> torch.Tensor:
        return _chunk_terms(s, t if with_kl else None, tg, normalised)

    if t_given is not None and not with_kl:
        # only the teacher's width is needed: its logits are never computed
        walk = walk_tokens(_narrowed(s_given, t_given.vocab_size), None, targets, mask, fn, chunk_tokens=chunk_tokens)
    else:
        walk = walk_tokens(s_given, t_given, targets, mask, fn, chunk_tokens=chunk_tokens)
    if walk.values.ndim == 1:  # no valid token: empty, still connected to the graph
        return walk.index, walk.values, walk.values
    return walk.index, walk.values[:, 0], walk.values[:, 1]


def _narrowed(scores: ResponseScores, vocab: int) -> ResponseScores:
    return ResponseScores(
        hidden=scores.hidden,
        head=scores.head,
        logits=scores.logits,
        vocab_size=min(scores.vocab_size, vocab),
        chunk_tokens=scores.chunk_tokens,
    )


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    weights: torch.Tensor,
    advantages: torch.Tensor,
    *,
    clip: float,
    weight_in_clip: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO-clipped, importance-weighted policy-gradient loss (1-D tensors of valid tokens).

    ``weight_in_clip`` (reference): rho = exp(log q_theta - log q_old) * w and
    loss = max(-A rho, -A clip(rho, 1 - eps, 1 + eps)). Otherwise the trust region only measures how far the
    policy moved from q_old: ratio = exp(log q_theta - log q_old), loss = w * max(-A ratio, -A clip(ratio)).

    Returns the per-token loss, a boolean "clipped" per token (the clipped branch is the active one, i.e. the
    clip removes the token's gradient: A > 0 and rho > 1 + eps, or A < 0 and rho < 1 - eps), and the ratio
    q_theta / q_old.
    """
    ratio = torch.exp(logprobs.float() - old_logprobs.float())
    w = weights.float()
    a = advantages.float()
    rho = ratio * w if weight_in_clip else ratio
    unclipped = -a * rho
    clipped = -a * rho.clamp(1.0 - clip, 1.0 + clip)
    loss = torch.maximum(unclipped, clipped)
    if not weight_in_clip:
        loss = w * loss
    with torch.no_grad():
        was_clipped = ((a > 0) & (rho > 1.0 + clip)) | ((a < 0) & (rho < 1.0 - clip))
    return loss, was_clipped, ratio.detach()
