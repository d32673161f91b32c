"""Samplers with contract bugs ``minillm plugins check`` catches.

* ``fixture_eos_outside``: the student's samples, but the EOS that ends a row is left out of the mask;
* ``fixture_processed_logprobs``: reports the log-probability of the *processed* distribution (temperature,
  top-k, top-p, the EOS ban of ``min_new_tokens``) as ``behaviour_logprobs``: right at the defaults, wrong as
  soon as an option makes the processed distribution differ from the student's own.
* ``fixture_own_loop``: its own decoding loop (correct tokens, masks and log-probs), which stops when its rows
  are done and ignores ``ctx.synced``: under ZeRO-3 with several ranks it would hang.
"""

from __future__ import annotations

import torch

from minillm_distill.api import GenerationParams, RolloutBatch, Sampler, eos_token_ids, generate_rollout, hookimpl


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


class OwnLoop(Sampler):
    name = "fixture_own_loop"
    Params = GenerationParams
    needs_responses = False
    records_logprobs = True

    @torch.no_grad()
    def sample(self, batch, ctx):
        eos = torch.tensor(eos_token_ids(ctx.tokenizer, ctx.student))
        ids, mask = batch.prompt_ids, batch.prompt_mask.long()
        alive = torch.ones(ids.size(0), dtype=torch.bool)
        tokens, logprobs, alive_at = [], [], []
        for _ in range(self.params.max_new_tokens):
            position = (mask.cumsum(-1) - 1).clamp(min=0)
            logp = ctx.student(input_ids=ids, attention_mask=mask, position_ids=position).logits[:, -1].float()
            logp = logp.log_softmax(-1)
            token = torch.multinomial(logp.exp(), 1, generator=ctx.generator)[:, 0]
            token = torch.where(alive, token, eos[0].expand_as(token))
            tokens.append(token)
            logprobs.append(torch.where(alive, logp.gather(-1, token[:, None])[:, 0], torch.zeros_like(logp[:, 0])))
            alive_at.append(alive.clone())
            alive = alive & ~torch.isin(token, eos)
            ids = torch.cat([ids, token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            if not alive.any():  # the bug: this rank stops, whatever the other ranks do
                break
        return RolloutBatch(
            prompt_ids=batch.prompt_ids,
            prompt_mask=batch.prompt_mask,
            response_ids=torch.stack(tokens, dim=1),
            response_mask=torch.stack(alive_at, dim=1).long(),
            behaviour_logprobs=torch.stack(logprobs, dim=1),
            source=self.name,
        )


@hookimpl
def register_samplers(register):
    register(EosOutside)
    register(ProcessedLogprobs)
    register(OwnLoop)
