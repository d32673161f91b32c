"""A plugin whose divergence or sampler fails during training, chosen by ``MINILLM_FX_FAIL``:

``per_token``: the divergence ``fixture_raising_kl`` raises ValueError at its first call;
``sample``: the sampler ``fixture_raising`` raises ValueError at its first call;
``sample_rank1``: the same on rank 1 only (rank 0 runs on until it loses its peer);
``kill``: the divergence SIGKILLs its own process on rank 1 at step 2 (a worker lost to a signal);
``shape`` / ``scalar`` / ``negative``: the divergence returns ``[N, 1]`` values, one scalar, or a negative value
(wrong numbers the core must stop at the source);
``nan_grad``: a finite value whose gradient is NaN (every step); ``nan_grad_at_2``: the same at step 2 only
(the divergence's second call; one micro-batch per step).
Otherwise both behave like forward KL and the dataset sampler.
"""

from __future__ import annotations

import os
import signal

import torch

from minillm_distill.api import PromptBatch, RolloutBatch, Sampler, SamplerContext, TokenDivergence, hookimpl

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

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        mode = os.environ.get(FAIL_ENV)
        if mode == "sample" or (mode == "sample_rank1" and os.environ.get("RANK") == "1"):
            _explode("sample")
        return RolloutBatch(
            prompt_ids=batch.prompt_ids,
            prompt_mask=batch.prompt_mask,
            response_ids=batch.response_ids,
            response_mask=batch.response_mask,
            source=self.name,
        )


@hookimpl
def register_divergences(register):
    register(RaisingKL)


@hookimpl
def register_samplers(register):
    register(RaisingSampler)
