"""Rollout-phase metrics of the ``minillm`` divergence (global over ranks through a :class:`Reducer`).

* ``reward``: mean per-token reward r_t the policy gradient sees (scaled and clipped), over valid tokens.
* ``return``: mean over sequences of sum_t gamma^t r_t, divided by the response length when ``length_norm`` is
  on (the reference's "reward" statistic).
* ``rev_kl``: per-token reverse-KL estimate with the k3 estimator, k3 = (rho - 1) - log rho with
  rho = p(y_t) / q_old(y_t), importance-weighted by w_t because tokens are drawn from the mixture:
  sum_t w_t k3_t / (valid tokens). Since E_{y~m}[w k3] = E_{y~q}[k3] = KL(q_old(.|y<t) || p(.|y<t)), this
  estimates the student's next-token reverse KL averaged over the positions of the rollout (whose prefixes
  follow the sampling distribution: the student's own when alpha = 0). ``rev_kl_seq`` is the same per-sequence
  sum averaged over sequences.
* ``rollout_length``: mean number of valid response tokens per sequence (of the rollout as sampled, i.e. the
  teacher-mixed length when alpha > 0; no separate student-only rollout is drawn for metrics).
* ``iw_mean`` / ``iw_min`` / ``iw_max``: the importance weights w_t over valid tokens.
* ``adv_mean`` / ``adv_std``: advantages before whitening.
"""

from __future__ import annotations

import math

import torch

from minillm_distill.api import Reducer
from minillm_distill.builtins.divergences.minillm.returns import discounted_returns

_KEYS = ("tokens", "sequences", "reward", "return", "k3", "weight")


def phase_sums(
    *,
    rewards: torch.Tensor,
    log_ratio: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    length_norm: bool,
) -> tuple[torch.Tensor, float, float]:
    """Local float64 sums (in the order of ``_KEYS``) for one micro-batch, and its local min / max weight."""
    lengths = mask.sum(1).double()
    g0 = discounted_returns(rewards, mask, gamma=gamma, include_current=True)[:, 0].double()
    if length_norm:
        g0 = g0 / lengths.clamp(min=1.0)
    lr = log_ratio.double()
    k3 = torch.expm1(lr) - lr  # (p/q - 1) - log(p/q), exact near 0
    w = weights.double()
    valid_w = w[mask]
    sums = torch.stack(
        [
            lengths.sum(),
            lengths.new_tensor(float(mask.size(0))),
            rewards.double()[mask].sum(),
            g0.sum(),
            (w * k3)[mask].sum(),
            valid_w.sum(),
        ]
    )
    w_min = float(valid_w.min()) if valid_w.numel() else math.inf
    w_max = float(valid_w.max()) if valid_w.numel() else -math.inf
    return sums, w_min, w_max


def phase_metrics(
    sums: torch.Tensor, w_min: float, w_max: float, adv_mean: float, adv_std: float, reduce: Reducer
) -> dict[str, float]:
    total = dict(zip(_KEYS, reduce.sum(sums).tolist(), strict=True))
    lo = float(reduce.min(sums.new_tensor([w_min])).item())
    hi = float(reduce.max(sums.new_tensor([w_max])).item())
    tokens, seqs = total["tokens"], total["sequences"]
    per_tok = 1.0 / tokens if tokens > 0 else 0.0
    per_seq = 1.0 / seqs if seqs > 0 else 0.0
    return {
        "reward": total["reward"] * per_tok,
        "return": total["return"] * per_seq,
        "rev_kl": total["k3"] * per_tok,
        "rev_kl_seq": total["k3"] * per_seq,
        "rollout_length": tokens * per_seq,
        "rollout_sequences": seqs,
        "rollout_tokens": tokens,
        "iw_mean": total["weight"] * per_tok if tokens > 0 else 1.0,
        "iw_min": lo if math.isfinite(lo) else 1.0,
        "iw_max": hi if math.isfinite(hi) else 1.0,
        "adv_mean": adv_mean,
        "adv_std": adv_std,
    }
