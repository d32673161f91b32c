"""Samplers with contract bugs ``minillm plugins check`` catches.

* ``fixture_eos_outside``: the student's samples, but the EOS that ends a row is left out of the mask;
* ``fixture_processed_logprobs``: reports the log-probability of the *processed* distribution (temperature,
  top-k, top-p, the EOS ban of ``min_new_tokens``) as ``behaviour_logprobs``: right at the defaults, wrong as
  soon as an option makes the processed distribution differ from the student's own.
"""

from __future__ import annotations

import torch

from minillm_cli.api import GenerationParams, Sampler, eos_token_ids, generate_rollout, hookimpl


class EosOutside(Sampler):
    name = "fixture_eos_outside"
    Params = GenerationParams
    needs_responses = False

    def sample(self, batch, ctx):
        r = generate_rollout(batch, ctx, self.params, source="student")
        eos = torch.tensor(eos_token_ids(ctx.tokenizer, ctx.student), device=r.response_ids.device)
        r.response_mask = r.response_mask * (~torch.isin(r.response_ids, eos)).to(r.response_mask.dtype)
        return r


class ProcessedLogprobs(Sampler):
    name = "fixture_processed_logprobs"
    Params = GenerationParams
    needs_responses = False
    records_logprobs = True

    def sample(self, batch, ctx):
        r = generate_rollout(batch, ctx, self.params, source="student")
        probs = r.extras["sampling_probs"]
        r.behaviour_logprobs = torch.where(r.response_mask.bool(), probs.log(), torch.zeros_like(probs))
        return r


@hookimpl
def register_samplers(register):
    register(EosOutside)
    register(ProcessedLogprobs)
