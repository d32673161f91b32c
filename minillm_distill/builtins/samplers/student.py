"""``student`` sampler: on-policy responses sampled from the student itself (batched, KV cache).

``behaviour_logprobs`` = log q(y_t) under the student's unprocessed distribution (temperature 1, no
filtering) at sampling time. ``extras["sampling_probs"]`` holds the probability of each token under the
distribution it was actually drawn from (differs from q(y_t) only with temperature / top-k / top-p).
"""

from __future__ import annotations

from minillm_distill.api import GenerationParams, PromptBatch, RolloutBatch, Sampler, SamplerContext, generate_rollout


class StudentSampler(Sampler):
    name = "student"
    records_logprobs = True
    records_teacher_logprobs = False  # the teacher does not decode: use teacher_mixed (alpha 0) for MiniLLM
    description = "on-policy: the student samples the responses"
    Params = GenerationParams
    needs_responses = False

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        return generate_rollout(batch, ctx, self.params, source=self.name, use_student=True)
