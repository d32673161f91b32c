"""``teacher`` sampler (SeqKD, Kim & Rush 2016): the teacher generates the responses the student learns from.

``teacher_logprobs`` = log p(y_t) under the teacher's unprocessed distribution (temperature 1, no filtering);
the student does not decode, so ``behaviour_logprobs`` is left empty. ``extras["sampling_probs"]`` holds
the probability of each token under the distribution it was actually drawn from.
"""

from __future__ import annotations

from minillm_distill.api import (
    GenerationParams,
    PromptBatch,
    RolloutBatch,
    Sampler,
    SamplerContext,
    choose_teacher,
    generate_rollout,
)


class TeacherSampler(Sampler):
    name = "teacher"
    records_logprobs = False
    description = "SeqKD: the teacher generates the responses"
    needs_teacher = True
    needs_responses = False
    teacher_writes = True  # a teacher cache can keep one response per prompt (``minillm teacher capture``)
    Params = GenerationParams

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        return generate_rollout(
            batch, ctx, self.params, source=self.name, use_student=False, use_teacher=True, choose=choose_teacher
        )
