"""The auxiliary pretraining-corpus loss: lm_coef * ((1 - kd_ratio) * LM + kd_ratio * word-level KD).

LM is the cross entropy -log q(y_t) of the corpus tokens; word-level KD is the forward KL(p || q) per token
(true divergence form: the reference uses the soft cross entropy -sum_v p log q, which differs by the
teacher's entropy, a constant with the same gradient). Both are sums over the valid tokens divided by
``norm_tokens`` (the global count), computed together in one chunk walk over the scores (float32 logits from
the hidden states, one chunk of tokens at a time).
"""

from __future__ import annotations

import torch

from minillm_distill.api import ResponseScores, as_scores, walk_tokens
from minillm_distill.builtins.divergences._math import kl_from_logs, log_probs


def _ce(student: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # the cross entropy of the `sft` divergence: -log q(target) (no floor on the log-probs)
    return -torch.log_softmax(student, dim=-1).gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


def pretrain_terms(
    student: ResponseScores | torch.Tensor,
    teacher: ResponseScores | torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    norm_tokens: float,
    *,
    lm_coef: float,
    kd_ratio: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    denom = max(float(norm_tokens), 1.0)
    mask = mask.bool()
    if kd_ratio > 0:
        if teacher is None:
            raise ValueError("the minillm pretraining term with kd_ratio > 0 needs the teacher's scores")

        def both(s: torch.Tensor, t: torch.Tensor | None, tg: torch.Tensor) -> torch.Tensor:
            assert t is not None
            # LM over the student's full vocabulary (as `sft`), KD over the rows both models share
            return torch.stack([_ce(s, tg), kl_from_logs(log_probs(t), log_probs(s))], dim=-1)

        t_scores = as_scores(teacher)
        assert t_scores is not None
        s_scores = as_scores(student)
        assert s_scores is not None
        if s_scores.vocab_size != t_scores.vocab_size:
            # the cross entropy uses every student row, the KD only the shared ones: two walks
            lm_sum = walk_tokens(s_scores, None, targets, mask, lambda s, t, tg: _ce(s, tg)).values.sum()
            kd_sum = walk_tokens(
                s_scores, t_scores, targets, mask, lambda s, t, tg: kl_from_logs(log_probs(t), log_probs(s))
            ).values.sum()
        else:
            values = walk_tokens(s_scores, t_scores, targets, mask, both).values
            lm_sum, kd_sum = (values[:, 0].sum(), values[:, 1].sum()) if values.ndim == 2 else (values.sum(),) * 2
        lm = lm_sum / denom
        kd = kd_sum / denom
        combined = (1.0 - kd_ratio) * lm + kd_ratio * kd
    else:
        lm = walk_tokens(student, None, targets, mask, lambda s, t, tg: _ce(s, tg)).values.sum() / denom
        kd = lm.detach() * 0.0
        combined = lm
    loss = lm_coef * combined
    metrics = {"pt_loss": loss.detach(), "lm_loss": lm.detach(), "kd_loss": kd.detach()}
    return loss, metrics
