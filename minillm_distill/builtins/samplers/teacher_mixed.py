"""``teacher_mixed`` sampler (MiniLLM, Gu et al. 2023, section 2.2 "teacher-mixed sampling").

Student and teacher decode together, batched, each with its own KV cache (stock ``transformers``). Every next
token is drawn from the mixture

    m = (1 - alpha) q' + alpha p'

where q' and p' are the student's and the teacher's *processed* next-token distributions (temperature, then
top-k, then top-p, as in :func:`minillm_distill.generation.processed_probs`). Per response token it returns

* ``behaviour_logprobs``  log q_old(y_t): the student's unprocessed distribution (temperature 1, no
  filtering) at sampling time, i.e. the "old" policy of the PPO-style update;
* ``teacher_logprobs``    log p(y_t): the teacher's unprocessed distribution, reused as the reward
  r_t = log p(y_t) - log q_old(y_t) so no teacher pass is repeated later;
* ``importance_weights``  w_t = q_old(y_t) / m(y_t), with m the distribution the token was actually drawn
  from. With temperature 1, top_k 0 and top_p 1 (the paper's and the reference's setting) q' = q_old and
  p' = p, so this is exactly the paper's w_t = q(y_t) / ((1 - alpha) q(y_t) + alpha p(y_t)). With
  temperature or filtering it is the ratio that corrects the expectation under m back to the student's own
  distribution q_old.

Masked positions (after EOS) hold log-probs 0 and weight 1. ``alpha = 0`` draws exactly the ``student``
sampler's tokens for the same generator state (weights 1), ``alpha = 1`` exactly the ``teacher`` sampler's.
``extras["sampling_probs"]`` holds m(y_t); ``teacher_hidden`` the teacher's final hidden states at every
response token (scoring then runs no teacher forward). With ``probe_student_length`` (off by default: it is a
second student decode, about a quarter of a phase's time, for a metric only; the reference logs both) the
student also answers the same prompts alone, and ``extras["student_lengths"]`` holds those response
lengths, so training can report the student's own length beside the mixed rollouts'. The probe draws from its
own generator, so the mixed rollout is the same with the probe on or off.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from pydantic import Field

from minillm_distill.api import (
    GenerationParams,
    PromptBatch,
    RolloutBatch,
    Sampler,
    SamplerContext,
    generate_rollout,
    mixture,
)


class TeacherMixedParams(GenerationParams):
    alpha: float = Field(0.2, ge=0, le=1, description="weight of the teacher in the sampling mixture")
    probe_student_length: bool = Field(
        False,
        description="also sample the student alone on the same prompts to report its own response length "
        "(metric rollout/student_length; a second student decode, about a quarter of a phase's time)",
    )


class TeacherMixedSampler(Sampler):
    name = "teacher_mixed"
    records_logprobs = True
    records_teacher_logprobs = True
    description = "MiniLLM: each token drawn from (1 - alpha) q + alpha p, with importance weights"
    needs_teacher = True
    needs_responses = False
    Params = TeacherMixedParams

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        rollout = generate_rollout(
            batch,
            ctx,
            self.params,
            source=self.name,
            use_student=True,
            use_teacher=True,
            choose=mixture(self.params.alpha),
        )
        assert rollout.behaviour_logprobs is not None
        weights = torch.exp(rollout.behaviour_logprobs) / rollout.extras["sampling_probs"]
        rollout.importance_weights = torch.where(rollout.response_mask.bool(), weights, torch.ones_like(weights))
        if self.params.probe_student_length:
            seed = ctx.generator.initial_seed() ^ 0x5EED  # its own stream: the mixed draws stay unchanged
            probe_gen = torch.Generator(device=ctx.generator.device).manual_seed(seed)
            probe_ctx = replace(ctx, generator=probe_gen)
            alone = generate_rollout(batch, probe_ctx, self.params, source="student", use_student=True)
            rollout.extras["student_lengths"] = alone.response_mask.sum(dim=1).float()
        return rollout
