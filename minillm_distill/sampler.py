"""Sampler base class and its context; the batches a sampler consumes and produces are in
:mod:`minillm_distill.rollout` (offered here too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from minillm_distill.generation import ChooseFn, GenerationParams, decode
from minillm_distill.model_facts import eos_token_ids, model_device, pad_token_id, shared_vocab_size
from minillm_distill.registrable import Registrable
from minillm_distill.rollout import PromptBatch, RolloutBatch


@dataclass
class SamplerContext:
    """Everything a sampler may use for one call of :meth:`Sampler.sample`.

    ``student`` (the model being trained, in whatever wrapper the engine uses; call it, do not unwrap it, so
    that ZeRO-3 can gather its parameters) and ``teacher`` (``None`` without a ``teacher:`` section), and the
    ``tokenizer`` they share. ``generator`` is this rank's sampling RNG for this micro-batch (token draws):
    seeded from the recipe seed, the step (or rollout phase), the rank and the micro-batch, so a resumed run
    draws the same tokens.

    ``step``: the optimizer step being computed, counted **from 0** (the first step is ``step == 0``); the
    metrics rows and checkpoint folders count finished steps **from 1** (``"step": 1`` in ``metrics.jsonl``
    and ``checkpoints/step-1`` are written after ``step == 0`` ran). With a sequence-level divergence the
    sampler is called for every micro-batch of a rollout phase when the phase starts, and ``step`` is the
    phase's first optimizer step.

    ``seed`` is the recipe seed: a decision that must be the same on every rank (e.g. GKD's on-/off-policy
    coin) derives its own generator from ``(seed, step)`` instead of using ``generator`` or the global RNG.
    ``rank`` is this process's rank (0 on one process).

    ``synced``: parameters are sharded across several ranks (ZeRO-3, ``world_size > 1``), so every forward
    pass of the student or the teacher is a collective operation: each rank must run **the same number** of
    forward passes, or the ranks that call one more time wait forever for the others (the run hangs, with no
    error). A decoding loop that stops when its own rows have all ended does exactly that, because ranks sample
    responses of different lengths. :func:`generate_rollout` / :func:`~minillm_distill.generation.decode` honour
    it (a rank that is done keeps stepping on padding until every rank is done); a sampler with its own loop
    must do the same. Generation settings (max_new_tokens, temperature, top-k, top-p) are options of the
    sampler's ``Params``.
    """

    student: Any
    teacher: Any | None
    tokenizer: Any
    step: int
    generator: torch.Generator
    seed: int = 0
    rank: int = 0
    synced: bool = False
    teacher_logits_bytes: int = 0
    """the most bytes of teacher logits this call's rollout may keep (:attr:`RolloutBatch.teacher_logits`):
    the training loop gives a MiniLLM-style phase with more than one PPO epoch its share of
    ``train.phase_teacher_logits_mib``; 0 (the default, and every token-level step) keeps none. Not used when
    ``synced`` (the teacher's output layer is then a collective every rank must call alike)."""


class Sampler(Registrable):
    """Decides where the response tokens of a training batch come from (the gold data, the student, the
    teacher, a mixture). Subclasses set ``name``, ``description``, ``Params`` and the flags below, and implement
    :meth:`sample`; most build on :func:`generate_rollout`."""

    #: whether the sampler needs a teacher model (a recipe without ``teacher:`` is then a recipe error)
    needs_teacher: ClassVar[bool] = False
    #: whether the training data must have gold responses (off-policy samplers); generating samplers only
    #: need prompts
    needs_responses: ClassVar[bool] = True
    #: whether every rollout carries the student's ``behaviour_logprobs`` (sequence-level divergences need
    #: them); None: not declared, checked on the first rollout only
    records_logprobs: ClassVar[bool | None] = None
    #: whether every rollout carries ``teacher_logprobs`` (the teacher decoded beside the student), which a
    #: divergence with ``needs_teacher_logprobs`` (MiniLLM's reward) requires; None: not declared
    records_teacher_logprobs: ClassVar[bool | None] = None
    #: whether every rollout's responses are the data's gold responses, unchanged and in the batch's order: only
    #: then can a teacher cache (``teacher_cache:``, captured over those responses) stand in for the teacher
    replays_data: ClassVar[bool] = False
    #: whether every rollout's responses are written by the teacher alone (the student never decodes; SeqKD):
    #: then ``minillm teacher capture`` can call the sampler once per prompt and keep its responses, and a run
    #: with ``teacher_cache:`` replays them instead of calling the sampler
    teacher_writes: ClassVar[bool] = False

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        """Return the rollout of one micro-batch of prompts.

        Called once per micro-batch of every optimizer step (token-level divergences) or of every rollout
        phase (sequence-level ones), on every rank; nothing returned is trained through (decoding runs
        without gradients). ``batch`` holds this rank's prompts (and gold responses when the data has them),
        ``ctx`` the models, tokenizer, RNG and step (:class:`SamplerContext`).

        The result must keep the contract of :class:`RolloutBatch`: the same ``B`` rows in the same order,
        ``response_ids``/``response_mask`` ``[B, T]`` right-padded with the EOS inside the mask, per-token
        tensors aligned with them, log-probs under the *unprocessed* distributions. Draw random numbers only
        from ``ctx.generator`` (or a generator derived from ``ctx.seed`` and ``ctx.step``), so runs are
        reproducible and resumable. Decode with :func:`generate_rollout` (or
        :func:`~minillm_distill.generation.decode`, passing ``synced=ctx.synced``): a loop of your own that ignores
        ``ctx.synced`` hangs under ZeRO-3 with several ranks. An exception raised here stops training with a
        plugin error (exit 4) naming the plugin.
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints (schedules, counters), written as JSON: numbers, strings, booleans,
        ``None``, lists and string-keyed dicts only. Stateless samplers return ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on resume; ``{}`` for a checkpoint without it)."""
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
    """Sample responses to a batch's prompts with :func:`minillm_distill.generation.decode`, using the context's
    models, tokenizer (EOS / pad ids), sampling generator and rank synchronisation (``ctx.synced``): the helper
    every built-in generating sampler uses, and the one a sampler plugin should use.

    ``params``: the sampling options (the sampler's own ``Params``, subclassing
    :class:`~minillm_distill.generation.GenerationParams`). ``use_student`` / ``use_teacher``: which models decode
    (each with its own KV cache; both see the same tokens). ``choose(q, p)``: the distribution ``[B, V]`` the
    next token is drawn from, given the student's and the teacher's *processed* distributions (temperature,
    top-k, top-p; ``None`` for a model that does not decode); default: the student's if it decodes, else the
    teacher's (see :func:`~minillm_distill.generation.mixture`, :func:`~minillm_distill.generation.choose_teacher`).
    ``source`` is the label stored in :attr:`RolloutBatch.source`.

    Sampling is over the vocabulary rows the student and the teacher share (when there is a teacher), whichever
    of them decodes. A row ends at its first EOS (the tokenizer's, the chat template's end-of-turn token, the
    models' ``generation_config``), which stays inside the mask. The rollout (prompts included) lives on the
    decoding model's device; it carries the student's log-probs as ``behaviour_logprobs`` when the student
    decodes, the teacher's as ``teacher_logprobs`` and either ``teacher_logits`` (within
    ``ctx.teacher_logits_bytes``) or ``teacher_hidden`` (the teacher's final hidden states), so scoring runs no
    teacher forward over these tokens, when the teacher does, and ``extras["sampling_probs"]``:
    each token's probability under the distribution it was drawn from (so ``importance_weights`` are
    ``exp(behaviour_logprobs) / sampling_probs``, as ``teacher_mixed`` computes them).
    """
    student = ctx.student if use_student else None
    teacher = ctx.teacher if use_teacher else None
    if use_teacher and teacher is None:
        raise ValueError("this sampler needs a teacher model (add a `teacher:` section to the recipe)")
    device = model_device(student if student is not None else teacher)
    prompt_ids, prompt_mask = batch.prompt_ids.to(device), batch.prompt_mask.to(device)
    eos = eos_token_ids(ctx.tokenizer, ctx.student, ctx.teacher)
    width = shared_vocab_size(ctx.student, ctx.teacher)
    # not under ZeRO-3 across ranks: a rank that keeps logits would skip the teacher's output layer (a
    # collective there) while a rank with more rows than fit would call it
    keep_logits = (
        teacher is not None
        and not ctx.synced
        and _fits(prompt_ids.shape[0], params.max_new_tokens, width, ctx.teacher_logits_bytes)
    )
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
        vocab_size=width,
        synced=ctx.synced,
        # the hidden states only when the logits are not kept: scoring reads one or the other, never both
        keep_teacher_hidden=teacher is not None and not keep_logits,
        keep_teacher_logits=keep_logits,
    )
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=out.response_ids,
        response_mask=out.response_mask,
        behaviour_logprobs=out.student_logprobs,
        teacher_logprobs=out.teacher_logprobs,
        teacher_hidden=out.teacher_hidden,
        teacher_logits=out.teacher_logits,
        teacher_logits_normalised=out.teacher_logits is not None,
        source=source,
        extras={"sampling_probs": out.sampling_probs},
    )


def _fits(rows: int, new_tokens: int, width: int | None, budget: int) -> bool:
    """Whether ``[rows, new_tokens, width]`` float32 teacher logits fit in ``budget`` bytes."""
    return width is not None and budget > 0 and rows * new_tokens * width * 4 <= budget
