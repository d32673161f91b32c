"""Rewards, returns, length normalisation, prefix importance weights and whitening.

Every function takes ``[B, T]`` tensors aligned with the response tokens and a boolean ``mask`` of the same
shape (valid tokens; responses are right-padded). Values at masked positions are 0 in every output.
"""

from __future__ import annotations

import torch

from minillm_distill.api import Reducer


def token_rewards(
    teacher_logprobs: torch.Tensor,
    behaviour_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    scaling: float,
    clip: float | None,
) -> torch.Tensor:
    """r_t = clip((log p(y_t) - log q_old(y_t)) / scaling, -clip, clip)."""
    r = (teacher_logprobs.float() - behaviour_logprobs.float()) / scaling
    if clip is not None:
        r = r.clamp(-clip, clip)
    return torch.where(mask, r, torch.zeros_like(r))


def discounted_returns(
    rewards: torch.Tensor, mask: torch.Tensor, *, gamma: float, include_current: bool
) -> torch.Tensor:
    """G_t = sum_{t' >= t} gamma^(t' - t) r_t' (``include_current``), or the return of the next position,
    R_{t+1} = G_{t+1} = sum_{t' > t} gamma^(t' - t - 1) r_t' (0 at the last token)."""
    rewards = torch.where(mask, rewards, torch.zeros_like(rewards))
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        if include_current:
            running = rewards[:, t] + gamma * running
            out[:, t] = running
        else:
            out[:, t] = running  # return from t + 1 on
            running = rewards[:, t] + gamma * running
    return torch.where(mask, out, torch.zeros_like(out))


def remaining_counts(mask: torch.Tensor, *, include_current: bool) -> torch.Tensor:
    """Number of valid tokens at positions >= t (``include_current``) or > t: the number of rewards in the
    return of token t."""
    m = mask.to(torch.float32)
    at_or_after = m.flip(1).cumsum(1).flip(1)
    return at_or_after if include_current else at_or_after - m


def length_normalise(returns: torch.Tensor, mask: torch.Tensor, *, include_current: bool) -> torch.Tensor:
    """Divide each return by the number of rewards it sums (an empty return stays 0)."""
    counts = remaining_counts(mask, include_current=include_current)
    out = returns / counts.clamp(min=1.0)
    return torch.where(mask, out, torch.zeros_like(out))


def cumulative_weights(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """W_t = prod_{s <= t} w_s over valid tokens (computed in log space)."""
    logw = torch.where(mask, weights.float().clamp(min=1e-30).log(), torch.zeros_like(weights, dtype=torch.float32))
    return logw.cumsum(1).exp()


def prefix_weights_before(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """W_{t-1} = prod_{s < t} w_s over valid tokens (1 at the first token; computed in log space, so it is
    finite, possibly 0, whatever the weights)."""
    logw = torch.where(mask, weights.float().clamp(min=1e-30).log(), torch.zeros_like(weights, dtype=torch.float32))
    return (logw.cumsum(1) - logw).exp()


def prefix_weighted_returns(
    rewards: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor, *, gamma: float, include_current: bool
) -> torch.Tensor:
    """The per-decision return of token t divided by its own weight w_t, without dividing (a weight that
    underflows to 0 gives 0, never inf * 0):

    * ``include_current``: sum_{t'>=t} gamma^(t'-t) r_t' W_t' / w_t = W_{t-1} G'_t with
      G'_t = r_t + gamma w_{t+1} G'_{t+1};
    * else: sum_{t'>t} gamma^(t'-t-1) r_t' W_t' / w_t = W_{t-1} F_t with F_t = w_{t+1} (r_{t+1} + gamma F_{t+1}),

    where W_t = prod_{s<=t} w_s. Masked positions (weight 1, reward 0) give 0."""
    r = torch.where(mask, rewards.float(), torch.zeros_like(rewards, dtype=torch.float32))
    w = torch.where(mask, weights.float(), torch.ones_like(weights, dtype=torch.float32))
    out = torch.zeros_like(r)
    follow = torch.zeros_like(r[:, 0])  # F_t: the weighted return after t
    for t in reversed(range(r.size(1))):
        out[:, t] = r[:, t] + gamma * follow if include_current else follow
        follow = w[:, t] * (r[:, t] + gamma * follow)
    out = out * prefix_weights_before(w, mask)
    return torch.where(mask, out, torch.zeros_like(out))


def masked_moments(values: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
    """``[sum, sum of squares, count]`` (float64) of the valid entries of all tensors."""
    out = torch.zeros(3, dtype=torch.float64, device=values[0].device if values else "cpu")
    for v, m in zip(values, masks, strict=True):
        x = v[m].double()
        out += torch.stack([x.sum(), x.pow(2).sum(), x.new_tensor(float(x.numel()))])
    return out


def whiten(
    values: list[torch.Tensor], masks: list[torch.Tensor], reduce: Reducer, *, eps: float = 1e-8
) -> tuple[list[torch.Tensor], float, float]:
    """(x - mean) / sqrt(var + eps) with the mean and the population variance of the valid entries of every
    tensor on every rank (``reduce.sum`` of sums, squared sums and counts). Returns the whitened tensors and
    the global mean and standard deviation before whitening."""
    s, s2, n = reduce.sum(masked_moments(values, masks)).tolist()
    if n <= 0:
        return [torch.zeros_like(v) for v in values], 0.0, 0.0
    mean = s / n
    var = max(s2 / n - mean * mean, 0.0)
    scale = (var + eps) ** -0.5
    out = [torch.where(m, (v - mean) * scale, torch.zeros_like(v)) for v, m in zip(values, masks, strict=True)]
    return out, mean, var**0.5
