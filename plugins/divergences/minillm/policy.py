"""The per-token terms of the MiniLLM loss: student log-probs of the sampled tokens, the exact single-step
reverse KL over the vocabulary, and the PPO-clipped importance-weighted policy-gradient term.

Vocabulary-sized work happens in float32 chunks of valid tokens, recomputed in backward (activation
checkpointing), so a ``[B, T, V]`` float32 tensor never exists.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from minillm_cli.api import DEFAULT_CHUNK_TOKENS
from minillm_plugins.divergences._math import kl_from_logs, log_probs


def _chunk_terms(student: torch.Tensor, teacher: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    """``[n, 2]``: log q(target) and KL(q || p) (0 without a teacher) of ``n`` rows of logits."""
    logq = log_probs(student.float())
    target_lp = logq.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    kl = torch.zeros_like(target_lp) if teacher is None else kl_from_logs(logq, log_probs(teacher.float()))
    return torch.stack([target_lp, kl], dim=-1)


def token_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    with_kl: bool = True,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the valid positions of ``mask`` (row-major order): their flat indices, the student's log-prob of the
    target token, and the exact reverse KL(q(.|y<t) || p(.|y<t)) over the vocabulary (teacher detached).

    Both distributions are normalised over the vocabulary rows the two models share (``[:min(V_s, V_t)]``),
    the same rows the samplers draw from and score behaviour log-probs over. ``with_kl=False`` skips the KL
    (returned as zeros) while still using the teacher's width.
    """
    if student_logits.shape[:-1] != mask.shape or targets.shape != mask.shape:
        raise ValueError(
            f"shape mismatch: logits {tuple(student_logits.shape)}, targets {tuple(targets.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    vocab = student_logits.size(-1)
    if teacher_logits is not None:
        if teacher_logits.shape[:-1] != mask.shape:
            raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} do not match mask {tuple(mask.shape)}")
        vocab = min(vocab, teacher_logits.size(-1))
    idx = mask.reshape(-1).nonzero(as_tuple=True)[0]
    s_rows = student_logits.reshape(-1, student_logits.size(-1))[:, :vocab]
    t_rows = teacher_logits.reshape(-1, teacher_logits.size(-1))[:, :vocab] if teacher_logits is not None else None
    flat_targets = targets.reshape(-1)
    parts = []
    for start in range(0, int(idx.numel()), chunk_tokens):
        rows = idx[start : start + chunk_tokens]
        s = s_rows.index_select(0, rows)
        t = t_rows.index_select(0, rows).detach() if t_rows is not None and with_kl else None
        tg = flat_targets.index_select(0, rows)
        if torch.is_grad_enabled() and s.requires_grad:
            parts.append(checkpoint(_chunk_terms, s, t, tg, use_reentrant=False))
        else:
            parts.append(_chunk_terms(s, t, tg))
    if not parts:
        # keep the graph connected on an all-masked micro-batch (an empty slice: never nan)
        empty = student_logits.reshape(-1)[:0].float()
        return idx, empty, empty
    terms = torch.cat(parts, dim=0)
    return idx, terms[:, 0], terms[:, 1]


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
