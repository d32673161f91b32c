"""``dataset`` sampler: the gold responses of the data (off-policy; SFT, word-level KD)."""

from __future__ import annotations

from minillm_distill.api import PromptBatch, RolloutBatch, Sampler, SamplerContext


class DatasetSampler(Sampler):
    name = "dataset"
    records_logprobs = False
    replays_data = True  # the gold responses as they are: a teacher cache can stand in for the teacher
    description = "gold responses from the training data (off-policy)"

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        del ctx
        if batch.response_ids is None or batch.response_mask is None:
            raise ValueError("the dataset sampler needs data with responses (response/output field)")
        return RolloutBatch(
            prompt_ids=batch.prompt_ids,
            prompt_mask=batch.prompt_mask,
            response_ids=batch.response_ids,
            response_mask=batch.response_mask,
            source=self.name,
        )
