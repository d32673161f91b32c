"""Sampler base class and the batches a sampler consumes and produces."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch

from minillm_cli.components import Component
from minillm_cli.generation import (
    ChooseFn,
    GenerationParams,
    decode,
    eos_token_ids,
    model_device,
    pad_token_id,
    shared_vocab_size,
)


@dataclass
class PromptBatch:
    """Prompts (left-padded) and, when the data has them, gold responses (right-padded)."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor | None = None
    response_mask: torch.Tensor | None = None


@dataclass
class RolloutBatch:
    """What a sampler returns: prompt and response ids with masks, plus whatever it already knows so
    nothing is computed twice (behaviour log-probs, teacher log-probs, importance weights, all ``[B, T_r]``
    aligned with ``response_ids``)."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    behaviour_logprobs: torch.Tensor | None = None
    teacher_logprobs: torch.Tensor | None = None
    importance_weights: torch.Tensor | None = None
    teacher_hidden: torch.Tensor | None = None
    """``[B, T, H]`` the teacher's final hidden state predicting each response token, kept by a sampler that
    decoded with the teacher: scoring then runs no teacher forward (zeros at masked positions)."""
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> RolloutBatch:
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items() if k != "extras"
        }
        return replace(self, **moved)


@dataclass
class SamplerContext:
    """Everything a sampler may use for one step.

    ``generator`` is this rank's sampling RNG (token draws). ``seed`` is the recipe seed and ``step`` the
    optimizer step: a decision that must be the same on every rank (e.g. GKD's on-/off-policy coin) derives
    its own generator from ``(seed, step)`` instead of using ``generator`` or the global RNG. ``synced``:
    every rank runs the same number of decoding steps (needed when parameters are sharded with ZeRO-3).
    Generation settings (max_new_tokens, temperature, top-k, top-p) are options of the sampler's ``Params``.
    """

    student: Any
    teacher: Any | None
    tokenizer: Any
    step: int
    generator: torch.Generator
    seed: int = 0
    rank: int = 0
    synced: bool = False


class Sampler(Component):
    """Decides where the response tokens of a training batch come from."""

    needs_teacher: ClassVar[bool] = False
    #: whether the training data must have gold responses (off-policy samplers); generating samplers only
    #: need prompts
    needs_responses: ClassVar[bool] = True
    #: whether every rollout carries the student's ``behaviour_logprobs`` (sequence-level divergences need
    #: them); None: not declared, checked on the first rollout only
    records_logprobs: ClassVar[bool | None] = None

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints (schedules, buffers). Stateless samplers return ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


def generate_rollout(
    batch: PromptBatch,
    ctx: SamplerContext,
    params: GenerationParams,
    *,
    source: str,
    use_student: bool = True,
    use_teacher: bool = False,
    choose: ChooseFn | None = None,
) -> RolloutBatch:
    """Sample responses to a batch's prompts with :func:`minillm_cli.generation.decode`, using the context's
    models, tokenizer (EOS / pad ids), sampling generator and rank synchronisation.

    Sampling is over the vocabulary rows the student and the teacher share (when there is a teacher), whichever
    of them decodes. The rollout (prompts included) lives on the decoding model's device; it carries the
    student's log-probs as ``behaviour_logprobs`` when the student decodes, the teacher's as
    ``teacher_logprobs`` and ``teacher_hidden`` (the teacher's final hidden states, so scoring runs no
    teacher forward over these tokens) when the teacher does, and ``extras["sampling_probs"]``: each token's probability
    under the distribution it was drawn from.
    """
    student = ctx.student if use_student else None
    teacher = ctx.teacher if use_teacher else None
    if use_teacher and teacher is None:
        raise ValueError("this sampler needs a teacher model (add a `teacher:` section to the recipe)")
    device = model_device(student if student is not None else teacher)
    prompt_ids, prompt_mask = batch.prompt_ids.to(device), batch.prompt_mask.to(device)
    eos = eos_token_ids(ctx.tokenizer, ctx.student, ctx.teacher)
    out = decode(
        prompt_ids,
        prompt_mask,
        student=student,
        teacher=teacher,
        params=params,
        choose=choose,
        generator=ctx.generator,
        eos_token_id=eos,
        pad_token_id=pad_token_id(ctx.tokenizer, eos),
        vocab_size=shared_vocab_size(ctx.student, ctx.teacher),
        synced=ctx.synced,
        keep_teacher_hidden=teacher is not None,
    )
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=out.response_ids,
        response_mask=out.response_mask,
        behaviour_logprobs=out.student_logprobs,
        teacher_logprobs=out.teacher_logprobs,
        teacher_hidden=out.teacher_hidden,
        source=source,
        extras={"sampling_probs": out.sampling_probs},
    )
