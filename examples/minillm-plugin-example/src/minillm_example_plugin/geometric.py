"""``geometric_mixed``: on-policy sampling from the geometric mixture of student and teacher.

Each response token is drawn from

    m(v) ∝ q'(v)^(1 - alpha) * p'(v)^alpha

where q' and p' are the student's and the teacher's processed next-token distributions (temperature, top-k,
top-p). Where ``teacher_mixed`` adds the two distributions, this multiplies them: a token both models find
plausible is favoured, a token either model rules out is never drawn. ``alpha = 0`` is the student alone,
``alpha = 1`` the teacher alone.

Everything else comes from minillm's own decoding helper, :func:`minillm_distill.api.generate_rollout`: the KV
caches, EOS handling (the EOS stays inside the mask), the shared vocabulary rows, the per-rank sampling
generator and ``ctx.synced`` (every rank decodes the same number of steps under ZeRO-3, so several ranks do
not hang). Because tokens are drawn from ``m`` and not from the student, the rollout carries importance
weights w_t = q(y_t) / m(y_t) for a sequence-level divergence (``reinforce_rkl``, ``minillm``).
"""

from __future__ import annotations

import torch
from pydantic import Field

from minillm_distill.api import (
    ChooseFn,
    GenerationParams,
    PromptBatch,
    RolloutBatch,
    Sampler,
    SamplerContext,
    generate_rollout,
)


class GeometricMixedParams(GenerationParams):
    """Recipe options: every sampling option of ``GenerationParams`` (max_new_tokens, temperature, top_k,
    top_p, ...) plus ``alpha``."""

    alpha: float = Field(0.5, ge=0, le=1, description="teacher's exponent: m ∝ q^(1 - alpha) p^alpha")


def geometric_mixture(alpha: float) -> ChooseFn:
    """``choose(q, p)`` for :func:`generate_rollout`: the normalised q^(1 - alpha) p^alpha (rows ``[B, V]``).

    Computed in log space. A zero of either distribution (a token filtered out by top-k/top-p) stays a zero;
    a row where the two share no token at all falls back to the arithmetic mixture (1 - alpha) q + alpha p,
    so there is always something to draw."""

    def choose(q: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        if q is None or p is None:
            raise ValueError("geometric_mixed needs the student and the teacher to decode")
        log_m = torch.zeros_like(q)
        if alpha < 1:  # 0 * log 0 would be nan: leave out a factor whose exponent is 0
            log_m = log_m + (1 - alpha) * q.log()
        if alpha > 0:
            log_m = log_m + alpha * p.log()
        disjoint = torch.isneginf(log_m).all(dim=-1, keepdim=True)
        log_m = torch.where(disjoint, torch.zeros_like(log_m), log_m)
        m = torch.softmax(log_m, dim=-1)
        return torch.where(disjoint, (1 - alpha) * q + alpha * p, m)

    return choose


class GeometricMixedSampler(Sampler):
    name = "geometric_mixed"
    description = "each token drawn from q^(1 - alpha) p^alpha (normalised), with importance weights"
    Params = GeometricMixedParams
    needs_teacher = True  # both models decode
    needs_responses = False  # only prompts: the responses are generated
    records_logprobs = True  # the student decodes, so behaviour_logprobs are always there
    records_teacher_logprobs = True  # the teacher decodes too: teacher_logprobs (MiniLLM's reward) are there

    params: GeometricMixedParams

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        rollout = generate_rollout(
            batch,
            ctx,
            self.params,
            source=self.name,
            use_student=True,
            use_teacher=True,
            choose=geometric_mixture(self.params.alpha),
        )
        assert rollout.behaviour_logprobs is not None  # the student decoded
        # w_t = q(y_t) / m(y_t): the student's unprocessed probability over the probability it was drawn with
        weights = rollout.behaviour_logprobs.exp() / rollout.extras["sampling_probs"]
        rollout.importance_weights = torch.where(rollout.response_mask.bool(), weights, torch.ones_like(weights))
        return rollout
