"""One optimizer step: rollout (sampler) -> score (forward passes) -> loss -> backward -> step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from minillm_cli.data.batches import collate, micro_batch_indices
from minillm_cli.data.encode import EncodedData
from minillm_cli.divergence import TokenDivergence, token_divergence_sum
from minillm_cli.recipe.schema import Recipe
from minillm_cli.sampler import RolloutBatch, Sampler, SamplerContext
from minillm_cli.train import distributed as dist_utils
from minillm_cli.train.score import response_logits


def derive_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (recipe seed, step, rank, micro-batch...)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


@dataclass
class StepContext:
    recipe: Recipe
    engine: Any
    teacher: Any | None
    tokenizer: Any
    sampler: Sampler
    divergence: TokenDivergence
    data: EncodedData
    device: torch.device


def _rollouts(ctx: StepContext, step: int) -> list[RolloutBatch]:
    r, w = dist_utils.rank(), dist_utils.world_size()
    train = ctx.recipe.train
    pad = ctx.tokenizer.pad_token_id
    out = []
    for m, idx in enumerate(
        micro_batch_indices(
            len(ctx.data),
            seed=ctx.recipe.seed,
            step=step,
            micro=train.micro_batch_size,
            grad_accum=train.grad_accum,
            world=w,
            rank=r,
        )
    ):
        b = collate(ctx.data, idx, pad)
        batch = type(b)(*(t.to(ctx.device) if t is not None else None for t in vars(b).values()))
        gen = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.recipe.seed, step, r, m, 1))
        sctx = SamplerContext(
            student=ctx.engine.module,
            teacher=ctx.teacher,
            tokenizer=ctx.tokenizer,
            step=step,
            generator=gen,
            seed=ctx.recipe.seed,
            rank=r,
        )
        out.append(ctx.sampler.sample(batch, sctx).to(ctx.device))
    return out


def train_step(ctx: StepContext, step: int) -> dict[str, Any]:
    """Runs optimizer step ``step`` (0-based) and returns its metrics (identical on every rank)."""
    engine = ctx.engine
    world, gas = dist_utils.world_size(), ctx.recipe.train.grad_accum
    torch.manual_seed(derive_seed(ctx.recipe.seed, step, dist_utils.rank(), 0))
    rollouts = _rollouts(ctx, step)
    local_tokens = float(sum(int(r.response_mask.sum()) for r in rollouts))
    (global_tokens,) = dist_utils.all_reduce_sum([local_tokens], ctx.device)
    global_tokens = max(global_tokens, 1.0)
    lr = float(engine.get_lr()[0])
    loss_sum, bad = 0.0, False
    for i, r in enumerate(rollouts):
        s_logits = response_logits(engine, r)
        t_logits = None
        if ctx.divergence.needs_teacher:
            with torch.no_grad():
                t_logits = response_logits(ctx.teacher, r)
        total, _ = token_divergence_sum(ctx.divergence, s_logits, t_logits, r.response_ids, r.response_mask.bool())
        loss = total / global_tokens
        (nonfinite,) = dist_utils.all_reduce_max([0.0 if math.isfinite(loss.item()) else 1.0], ctx.device)
        if nonfinite:
            bad = True
        if bad:
            loss = s_logits[..., :0].sum().float()  # exactly zero, keeps DeepSpeed's bookkeeping in step
        else:
            loss_sum += loss.item()
        # DeepSpeed divides by grad_accum and averages over ranks; undo both so the gradient is that of
        # sum(token values) / global token count
        engine.backward(loss * (world * gas))
        if i == len(rollouts) - 1 and bad:
            for group in engine.optimizer.param_groups:
                group["lr"] = 0.0  # skip the update; the scheduler restores the LR at its next step
        engine.step()
    (loss_global,) = dist_utils.all_reduce_sum([loss_sum], ctx.device)
    grad_norm = engine.get_global_grad_norm() if not bad else None
    resp_lens = [float(r.response_mask.sum(1).float().mean()) for r in rollouts]
    (mean_len,) = dist_utils.all_reduce_sum([sum(resp_lens) / len(resp_lens)], ctx.device)
    return {
        "loss": float("nan") if bad else loss_global,
        "lr": lr,
        "grad_norm": float(grad_norm) if grad_norm is not None else None,
        "response_tokens": int(global_tokens),
        "response_length": mean_len / world,
        "skipped": bad,
    }
