"""A plugin whose divergence or sampler fails during training, chosen by ``MINILLM_FX_FAIL``:

``per_token``: the divergence ``fixture_raising_kl`` raises ValueError at its first call;
``sample``: the sampler ``fixture_raising`` raises ValueError at its first call;
``sample_rank1``: the same on rank 1 only (rank 0 runs on until it loses its peer);
``kill``: the divergence SIGKILLs its own process on rank 1 at step 2 (a worker lost to a signal);
``shape`` / ``scalar`` / ``negative``: the divergence returns ``[N, 1]`` values, one scalar, or a negative value
(wrong numbers the core must stop at the source);
``nan_grad``: a finite value whose gradient is NaN (every step); ``nan_grad_at_2``: the same at step 2 only
(the divergence's second call; one micro-batch per step); ``detached``: the divergence's values carry no
gradient (computed on detached logits).
Broken rollouts from the sampler: ``short_mask`` (the mask one column shorter than the ids), ``vocab`` (an id
beyond the vocabulary inside the mask), ``dropped_row`` (the batch's last row left out), ``holes`` (a 0 inside a
row's mask), ``nan_logprobs`` (NaN ``behaviour_logprobs``); ``bad_state``: ``state_dict()`` holds an object JSON
cannot write (from the first call); ``bad_state_later``: the same from its third call on; ``metrics``: the
rollout reports ``a`` (1 on rank 0, 3 on rank 1) and, on rank 1 only, ``b`` = 2; ``nan_metric``: ``a`` = NaN.
The sequence divergence ``fixture_sequence`` (the student's mean negative log-likelihood of the rollout) breaks
with ``vector`` (a loss per token, not a scalar) and ``seq_detached`` (a loss without a gradient).
The benchmark ``fixture_bench`` (records with ``question`` and ``answer``) breaks with ``parse_raise`` (a
KeyError of its own in ``parse_record``) and ``string_refs`` (the answer given as ``references="..."``).
``fixture_sequence_tlp`` is ``fixture_sequence`` declaring ``needs_teacher_logprobs``; the sampler
``fixture_undeclared`` samples from the student and does not declare whether it records the teacher's log-probs
(it does not).
Otherwise they behave like forward KL, the dataset sampler, a plain likelihood loss and a question-answer set.
"""

from __future__ import annotations

import os
import signal

import torch

from minillm_distill.api import (
    Benchmark,
    EvalExample,
    GenerationParams,
    PhaseParams,
    PromptBatch,
    RolloutBatch,
    Sampler,
    SamplerContext,
    SequenceDivergence,
    TokenDivergence,
    cross_entropy_per_token,
    generate_rollout,
    hookimpl,
    walk_tokens,
)

FAIL_ENV = "MINILLM_FX_FAIL"


def _explode(what: str) -> None:
    raise ValueError(f"fixture failure in {what}")


class RaisingKL(TokenDivergence):
    name = "fixture_raising_kl"

    calls = 0

    def per_token(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        RaisingKL.calls += 1
        mode = os.environ.get(FAIL_ENV)
        if mode == "per_token":
            _explode("per_token")
        if mode == "kill" and os.environ.get("RANK") == "1" and RaisingKL.calls >= 3:
            os.kill(os.getpid(), signal.SIGKILL)
        logp = torch.log_softmax(teacher_logits, dim=-1)
        logq = torch.log_softmax(student_logits, dim=-1)
        kl = (logp.exp() * (logp - logq)).sum(-1)
        if mode == "shape":
            return kl.unsqueeze(-1)
        if mode == "scalar":
            return kl.mean()
        if mode == "negative":
            return kl - 1.0
        if mode == "detached":
            return kl.detach()
        if mode == "nan_grad" or (mode == "nan_grad_at_2" and RaisingKL.calls == 2):
            return _NanGrad.apply(kl)
        return kl


class _NanGrad(torch.autograd.Function):
    """The identity forward, a NaN gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class RaisingSampler(Sampler):
    name = "fixture_raising"
    records_logprobs = False

    calls = 0

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        RaisingSampler.calls += 1
        mode = os.environ.get(FAIL_ENV)
        if mode == "sample" or (mode == "sample_rank1" and os.environ.get("RANK") == "1"):
            _explode("sample")
        prompt_ids, prompt_mask = batch.prompt_ids, batch.prompt_mask
        ids, mask = batch.response_ids.clone(), batch.response_mask.clone()
        logprobs = None
        if mode == "short_mask":
            mask = mask[:, :-1]
        elif mode == "vocab":
            ids[0, 0] = 10**6
        elif mode == "dropped_row":
            prompt_ids, prompt_mask, ids, mask = prompt_ids[:-1], prompt_mask[:-1], ids[:-1], mask[:-1]
        elif mode == "holes":
            mask[0, 1] = 0
        elif mode == "nan_logprobs":
            logprobs = torch.full(ids.shape, float("nan"))
        metrics = {}
        if mode == "metrics":  # rank 0 reports one number, rank 1 that and another: names differ by rank
            metrics = {"a": 1.0} if os.environ.get("RANK", "0") == "0" else {"a": 3.0, "b": 2.0}
        elif mode == "nan_metric":
            metrics = {"a": float("nan")}
        return RolloutBatch(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=ids,
            response_mask=mask,
            behaviour_logprobs=logprobs,
            source=self.name,
            metrics=metrics,
        )

    def state_dict(self) -> dict:
        mode = os.environ.get(FAIL_ENV)
        if mode == "bad_state" or (mode == "bad_state_later" and RaisingSampler.calls >= 3):
            return {"seen": object()}
        return {"calls": RaisingSampler.calls}


class SequenceLikelihood(SequenceDivergence):
    """The student's mean negative log-likelihood of the rollout's tokens, as a sequence-level divergence."""

    name = "fixture_sequence"

    class Params(PhaseParams):
        pass

    def prepare(self, rollouts, reducer):
        return [{} for _ in rollouts], {}

    def loss(self, student, teacher, rollout, prepared, norm):
        per_token = walk_tokens(
            student, None, rollout.response_ids, rollout.response_mask.bool(),
            lambda s, t, targets: cross_entropy_per_token(s, targets),
        ).values  # fmt: skip
        mode = os.environ.get(FAIL_ENV)
        if mode == "vector":
            return per_token, {}
        loss = per_token.sum() / norm.tokens
        return (loss.detach() if mode == "seq_detached" else loss), {"nll": float(loss)}


class SequenceNeedsTeacherLogprobs(SequenceLikelihood):
    name = "fixture_sequence_tlp"
    needs_teacher_logprobs = True


class UndeclaredSampler(Sampler):
    name = "fixture_undeclared"
    records_logprobs = True  # records_teacher_logprobs left undeclared (None)
    needs_responses = False
    Params = GenerationParams

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        return generate_rollout(batch, ctx, self.params, source=self.name, use_student=True)


class FixtureBench(Benchmark):
    name = "fixture_bench"
    data_format = "a JSONL file, one object a line with string fields 'question' and 'answer'"
    example_records = ({"question": "Name a colour.", "answer": "Blue."},)

    def parse_record(self, record, where, *, index):
        mode = os.environ.get(FAIL_ENV)
        if mode == "parse_raise":
            return [EvalExample(instruction=record["prompt"], input="", references=())]  # a KeyError
        answer = self.require(record, "answer", where)
        references = answer if mode == "string_refs" else (answer,)
        return [EvalExample(instruction=self.require(record, "question", where), input="", references=references)]


@hookimpl
def register_benchmarks(register):
    register(FixtureBench)


@hookimpl
def register_divergences(register):
    register(RaisingKL)
    register(SequenceLikelihood)
    register(SequenceNeedsTeacherLogprobs)


@hookimpl
def register_samplers(register):
    register(RaisingSampler)
    register(UndeclaredSampler)
