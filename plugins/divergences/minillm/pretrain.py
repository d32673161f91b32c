"""The auxiliary pretraining-corpus loss: lm_coef * ((1 - kd_ratio) * LM + kd_ratio * word-level KD).

LM is the cross entropy -log q(y_t) of the corpus tokens; word-level KD is the forward KL(p || q) per token
(true divergence form: the reference uses the soft cross entropy -sum_v p log q, which differs by the
teacher's entropy, a constant with the same gradient). Both are sums over the valid tokens divided by
``norm_tokens`` (the global count), computed in float32 chunks by the token-divergence core.
"""

from __future__ import annotations

import torch

from minillm_cli.api import token_divergence_sum
from minillm_plugins.divergences.fkl import ForwardKL
from minillm_plugins.divergences.sft import CrossEntropy

_CE = CrossEntropy()
_FKL = ForwardKL()


def pretrain_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    norm_tokens: float,
    *,
    lm_coef: float,
    kd_ratio: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    denom = max(float(norm_tokens), 1.0)
    mask = mask.bool()
    ce_sum, _ = token_divergence_sum(_CE, student_logits, None, targets, mask)
    lm = ce_sum / denom
    if kd_ratio > 0:
        if teacher_logits is None:
            raise ValueError("the minillm pretraining term with kd_ratio > 0 needs teacher logits")
        kd_sum, _ = token_divergence_sum(_FKL, student_logits, teacher_logits, targets, mask)
        kd = kd_sum / denom
        combined = (1.0 - kd_ratio) * lm + kd_ratio * kd
    else:
        kd = lm.detach() * 0.0
        combined = lm
    loss = lm_coef * combined
    metrics = {"pt_loss": loss.detach(), "lm_loss": lm.detach(), "kd_loss": kd.detach()}
    return loss, metrics
