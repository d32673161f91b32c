"""``reinforce_rkl``: the sequence-level reverse KL, KL(q || p) over whole responses, by REINFORCE.

For a response y = y_1..y_T sampled from the student q, with per-token rewards
r_t = log p(y_t | y_<t) - log q(y_t | y_<t) and returns G_t = sum_{t' >= t} gamma^(t' - t) r_t',

    grad KL(q || p) = -E_{y~q} sum_t G_t grad log q(y_t | y_<t)          (gamma = 1)

(the score-function gradient; a token's log-prob only affects the rewards from t on). The loss per
micro-batch is the surrogate -sum_t w_t G_t rho_t / N with rho_t = q_theta(y_t) / q_old(y_t) (1 in value at
sampling time, and grad rho_t = grad log q_theta(y_t) there), w_t the sampler's importance weights (1 for
tokens drawn from the student itself; ``geometric_mixed`` and ``teacher_mixed`` record them) and N the
optimizer step's global token count, so the summed contributions do not depend on how the step is split.
No PPO clipping, no baseline: unbiased and simple, noisier than ``minillm``. ``gamma < 1`` trades bias for
variance.

How minillm drives it (see ``SequenceDivergence`` in ``minillm_distill.api``): :meth:`prepare` once per rollout
phase turns the buffer's log-probs into returns (nothing vocabulary-sized); :meth:`loss` per micro-batch
computes the student's log-probs of the sampled tokens from its scores with ``walk_tokens`` (logits of a
chunk of tokens at a time, never ``[B, T, V]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field

from minillm_distill.api import (
    PluginParams,
    Reducer,
    ResponseScores,
    RolloutBatch,
    SequenceDivergence,
    StepNorm,
    as_scores,
    walk_tokens,
)


class ReinforceParams(PluginParams):
    """Recipe options of ``reinforce_rkl``."""

    # the values `minillm plugins check` tries for gamma (without this line it would derive 0, 1 and 0.5)
    check_values: ClassVar[dict[str, Sequence[Any]]] = {"gamma": (0.0, 0.5, 0.9)}

    gamma: float = Field(1.0, ge=0, le=1, description="discount of the returns (1 = the exact gradient)")


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1} along each row of ``[B, T]`` rewards, 0 at masked positions."""
    rewards = torch.where(mask, rewards, torch.zeros_like(rewards))
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.size(1) - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return torch.where(mask, out, torch.zeros_like(out))


def _target_logprob(student: torch.Tensor, teacher: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    """log q(target) for one chunk of ``[n, V]`` student logits (the walk's consumer)."""
    return torch.log_softmax(student, dim=-1).gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


class ReinforceRKL(SequenceDivergence):
    name = "reinforce_rkl"
    description = "sequence-level reverse KL(q || p) by REINFORCE (importance-weighted, no clipping)"
    Params = ReinforceParams
    needs_teacher = True  # the rewards are the teacher's log-probs

    params: ReinforceParams

    def prepare(
        self, batches: list[RolloutBatch], reduce: Reducer
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, float]]:
        prepared, totals = [], torch.zeros(2, dtype=torch.float64)
        for b in batches:
            if b.behaviour_logprobs is None or b.teacher_logprobs is None:
                raise ValueError(
                    "reinforce_rkl needs the student's and the teacher's log-probs of the sampled tokens: "
                    "use a sampler where both decode (geometric_mixed, teacher_mixed)"
                )
            mask = b.response_mask.bool()
            rewards = (b.teacher_logprobs.float() - b.behaviour_logprobs.float()).masked_fill(~mask, 0.0)
            weights = b.importance_weights.float() if b.importance_weights is not None else torch.ones_like(rewards)
            prepared.append(
                {
                    "returns": discounted_returns(rewards, mask, self.params.gamma),
                    "weights": weights.masked_fill(~mask, 0.0),
                }
            )
            totals += torch.stack([rewards.sum().double().cpu(), mask.sum().double().cpu()])
        reward_sum, tokens = reduce.sum(totals).tolist()  # over every rank's share of the phase
        return prepared, {"reward": reward_sum / max(tokens, 1.0)}

    def loss(
        self,
        student: ResponseScores,
        teacher: ResponseScores | None,
        batch: RolloutBatch,
        prepared: dict[str, torch.Tensor],
        norm: StepNorm,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        scores = as_scores(student)
        assert scores is not None
        if teacher is not None:
            # the sampler normalised q over the rows both models share: score the same rows
            t = as_scores(teacher)
            assert t is not None
            scores = ResponseScores(
                hidden=scores.hidden,
                head=scores.head,
                logits=scores.logits,
                vocab_size=min(scores.vocab_size, t.vocab_size),
                chunk_tokens=scores.chunk_tokens,
            )
        mask = batch.response_mask.bool()
        walk = walk_tokens(scores, None, batch.response_ids, mask, _target_logprob)

        def valid(x: torch.Tensor) -> torch.Tensor:  # [B, T] -> the walk's valid positions, in its order
            return x.reshape(-1).index_select(0, walk.index).float()

        assert batch.behaviour_logprobs is not None
        ratio = torch.exp(walk.values - valid(batch.behaviour_logprobs))
        returns, weights = valid(prepared["returns"]), valid(prepared["weights"])
        loss = -(weights * returns * ratio).sum() / norm.tokens
        return loss, {"return": (weights * returns).sum().detach() / norm.tokens}
