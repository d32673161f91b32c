"""A sampler whose state differs between ranks and changes what is trained: ``fixture_stateful`` counts its
calls on this rank, weighted by the rank (``n += rank + 1``), and keeps only the first ``1 + n % 3`` response
tokens of each row. A resume that gave every rank rank 0's state would train on other tokens."""

from __future__ import annotations

import os

from minillm_distill.api import PromptBatch, RolloutBatch, Sampler, SamplerContext, hookimpl


class StatefulSampler(Sampler):
    name = "fixture_stateful"
    records_logprobs = False

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.n = 0

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        self.n += ctx.rank + 1
        mask = batch.response_mask.clone()
        keep = 1 + self.n % 3
        mask[:, keep:] = 0
        return RolloutBatch(
            prompt_ids=batch.prompt_ids,
            prompt_mask=batch.prompt_mask,
            response_ids=batch.response_ids,
            response_mask=mask,
            source=self.name,
        )

    def state_dict(self) -> dict:
        return {"n": self.n, "rank": int(os.environ.get("RANK", "0"))}

    def load_state_dict(self, state: dict) -> None:
        self.n = int(state.get("n", 0))


@hookimpl
def register_samplers(register):
    register(StatefulSampler)
