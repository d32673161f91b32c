"""``mixed`` sampler (GKD, Agarwal et al. 2024): on-policy with probability lambda, else the gold responses.

At each training step a coin with P(heads) = ``lambda`` (recipe key ``lambda``; ``lambda_`` is accepted too)
decides for the whole batch: heads, the student samples the responses (as the ``student`` sampler does);
tails, the dataset's gold responses are used (as the ``dataset`` sampler does). The coin is drawn from a
dedicated ``torch.Generator`` seeded from ``(recipe seed, step)`` only (``derive_seed``, with a stream constant
of its own), so it is reproducible, identical on every rank, independent of the global RNG and of the
token-sampling generator, and unaffected by resuming.
``extras["on_policy"]`` says which branch a batch took; the state counts both (for metrics and checkpoints).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ConfigDict, Field

from minillm_distill.api import (
    GenerationParams,
    PromptBatch,
    RolloutBatch,
    Sampler,
    SamplerContext,
    derive_seed,
    generate_rollout,
)


class MixedParams(GenerationParams):
    model_config = ConfigDict(populate_by_name=True)

    lambda_: float = Field(
        0.5, ge=0, le=1, alias="lambda", description="probability that a step uses the student's own samples"
    )


#: names the coin's stream in :func:`derive_seed` (no other stream uses it)
COIN_STREAM = 0x6D697865


def on_policy_decision(seed: int, step: int, prob: float) -> bool:
    """True when the step ``step`` of a run with recipe seed ``seed`` samples on-policy."""
    generator = torch.Generator(device="cpu").manual_seed(derive_seed(seed, step, COIN_STREAM))
    return bool(torch.rand((), generator=generator).item() < prob)


class MixedSampler(Sampler):
    name = "mixed"
    records_logprobs = False
    description = "GKD: the student's samples with probability lambda per step, else the gold responses"
    Params = MixedParams

    def __init__(self, params: MixedParams | None = None) -> None:
        super().__init__(params)
        self.on_policy_steps = 0
        self.off_policy_steps = 0

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        on_policy = on_policy_decision(ctx.seed, ctx.step, self.params.lambda_)
        if on_policy:
            rollout = generate_rollout(batch, ctx, self.params, source="student", use_student=True)
            rollout.extras["on_policy"] = True
            self.on_policy_steps += 1
        else:
            if batch.response_ids is None or batch.response_mask is None:
                raise ValueError("the mixed sampler needs data with responses (response/output field)")
            rollout = RolloutBatch(
                prompt_ids=batch.prompt_ids,
                prompt_mask=batch.prompt_mask,
                response_ids=batch.response_ids,
                response_mask=batch.response_mask,
                source="dataset",
                extras={"on_policy": False},
            )
            self.off_policy_steps += 1
        return rollout

    def state_dict(self) -> dict[str, Any]:
        return {"on_policy_steps": self.on_policy_steps, "off_policy_steps": self.off_policy_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.on_policy_steps = int(state.get("on_policy_steps", 0))
        self.off_policy_steps = int(state.get("off_policy_steps", 0))
