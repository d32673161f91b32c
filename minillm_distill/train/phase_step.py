"""A step of a sequence-level divergence (MiniLLM): at a phase's first step the sampler fills the phase's
rollout buffer and the divergence prepares it (rewards, returns, advantages) once; every step trains on a
shuffled group of the buffer, ``ppo_epochs`` passes in all. The buffer is part of the checkpoint, so a resumed
run continues mid-phase."""

from __future__ import annotations

import math
from typing import Any

import torch

from minillm_distill.data.batches import micro_batch_indices
from minillm_distill.divergence import SequenceDivergence, StepNorm
from minillm_distill.errors import RecipeError
from minillm_distill.rollout import PhaseBuffer
from minillm_distill.scoring.forward import score_blocks
from minillm_distill.seeds import derive_seed
from minillm_distill.train import distributed as dist_utils
from minillm_distill.train.context import (
    DistReducer,
    StepContext,
    backward_micro,
    common_metrics,
    empty_loss,
    sample_rollouts,
    score_rollout,
    step_grad_norm,
)


def phase_logits_share(ctx: StepContext, n_micro: int) -> int:
    """Bytes of teacher logits each of a phase's ``n_micro`` micro-batches may keep: an even share of
    ``train.phase_teacher_logits_mib`` when the phase runs more than one PPO epoch over its rollouts (with one,
    the teacher's output layer runs once either way), else 0."""
    div = ctx.divergence
    epochs = div.ppo_epochs if isinstance(div, SequenceDivergence) else 1
    if epochs <= 1 or n_micro <= 0:
        return 0
    return ctx.train.phase_teacher_logits_mib * 2**20 // n_micro


def phase_layout(ctx: StepContext) -> tuple[int, int]:
    """(micro-batches per rank per phase, optimizer steps per phase)."""
    train = ctx.train
    div = ctx.divergence
    assert isinstance(div, SequenceDivergence)
    per_rank_seqs = None
    if div.rollouts_per_phase is not None:
        per_rank_seqs = math.ceil(div.rollouts_per_phase / dist_utils.world_size())
    n_micro = train.grad_accum if per_rank_seqs is None else math.ceil(per_rank_seqs / train.micro_batch_size)
    n_micro = max(train.grad_accum, math.ceil(n_micro / train.grad_accum) * train.grad_accum)
    return n_micro, div.ppo_epochs * n_micro // train.grad_accum


def phase_step(ctx: StepContext, step: int) -> dict[str, Any]:
    engine, div = ctx.engine, ctx.divergence
    assert isinstance(div, SequenceDivergence)
    gas = ctx.train.grad_accum
    n_micro, steps_per_phase = phase_layout(ctx)
    phase, j = divmod(step, steps_per_phase)
    new_phase = ctx.buffer is None or ctx.buffer.phase != phase
    if new_phase:
        rollouts = sample_rollouts(ctx, phase, n_micro, step, phase_logits_share(ctx, n_micro))
        if any(r.behaviour_logprobs is None for r in rollouts):
            raise RecipeError(
                f"divergence {div.name!r} needs on-policy rollouts with the student's log-probs, which sampler "
                f"{ctx.sampler.name!r} does not record",
                details=["sampler.name: use teacher_mixed (MiniLLM) or student"],
            )
        if div.needs_teacher_logprobs and any(r.teacher_logprobs is None for r in rollouts):
            # a sampler that did not declare records_teacher_logprobs passed pre-flight: caught at its output
            raise RecipeError(
                f"divergence {div.name!r} needs the teacher's log-probs of the sampled tokens, which sampler "
                f"{ctx.sampler.name!r} did not record (RolloutBatch.teacher_logprobs is None)",
                details=["sampler.name: use teacher_mixed (MiniLLM)"],
                hint="a sampler declares what it records with records_teacher_logprobs = True / False",
            )
        prepared, phase_metrics = ctx.outputs.prepared(div, rollouts, div.prepare(rollouts, DistReducer(ctx.device)))
        phase_metrics = dict(phase_metrics)
        probes = [r.extras["student_lengths"] for r in rollouts if "student_lengths" in r.extras]
        if probes:  # the student's own response length, beside the mixed rollouts' (rollout_length)
            total, count = dist_utils.all_reduce_sum(
                [float(sum(p.sum() for p in probes)), float(sum(p.numel() for p in probes))], ctx.device
            )
            phase_metrics["student_length"] = total / max(count, 1.0)
        ctx.buffer = PhaseBuffer(phase, rollouts, prepared, phase_metrics)
    buf = ctx.buffer
    assert buf is not None
    groups_per_epoch = n_micro // gas
    epoch, g = divmod(j, groups_per_epoch)
    order = torch.randperm(n_micro, generator=torch.Generator().manual_seed(derive_seed(ctx.seed, phase, epoch, 7)))
    chosen = order[g * gas : (g + 1) * gas].tolist()
    batches = [buf.rollouts[i] for i in chosen]
    tokens = float(sum(int(b.response_mask.sum()) for b in batches))
    seqs = float(sum(int(b.response_ids.size(0)) for b in batches))
    g_tokens, g_seqs = dist_utils.all_reduce_sum([tokens, seqs], ctx.device)
    norm = StepNorm(g_tokens, g_seqs)
    lr = float(engine.get_lr()[0])
    sums: dict[str, float] = {}
    loss_sum, bad = 0.0, False
    for k, (i, r) in enumerate(zip(chosen, batches, strict=True)):
        student, teacher = score_rollout(ctx, r, True)
        loss, metrics = ctx.outputs.sequence_loss(
            div, div.loss(student, teacher, r, buf.prepared[i], norm), student.source.requires_grad
        )
        pt_loss, pt_metrics = pretrain_term(ctx, step, k)
        loss = loss + pt_loss
        for name, v in {**metrics, **pt_metrics}.items():
            sums[name] = sums.get(name, 0.0) + float(v)
        bad = backward_micro(ctx, loss, empty_loss(student), k == len(batches) - 1, bad)
        if not bad or ctx.skip_reason == "non-finite gradient":  # that loss was finite: report it
            loss_sum += loss.item()
    names = sorted(sums)
    reduced = dist_utils.all_reduce_sum([loss_sum] + [sums[n] for n in names], ctx.device)
    row = {
        "loss": float("nan") if ctx.skip_reason == "non-finite loss" else reduced[0],
        "lr": lr,
        "grad_norm": step_grad_norm(ctx, bad),
        **common_metrics(ctx, batches, g_tokens),
        "phase": phase,
        "ppo_epoch": epoch,
        **dict(zip(names, reduced[1:], strict=True)),
        **{f"rollout/{k}": v for k, v in buf.metrics.items()},
        "skipped": bad,
    }
    return row


def pretrain_term(ctx: StepContext, step: int, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
    blocks = ctx.pretrain_blocks
    div = ctx.divergence
    assert isinstance(div, SequenceDivergence)
    if blocks is None:
        return torch.zeros((), device=ctx.device), {}
    train = ctx.train
    w, r = dist_utils.world_size(), dist_utils.rank()
    idx = micro_batch_indices(
        blocks.size(0),
        seed=ctx.seed + 1,
        step=step,
        micro=train.micro_batch_size,
        grad_accum=train.grad_accum,
        world_size=w,
        rank=r,
    )[micro]
    ids = blocks[idx].to(ctx.device)
    chunk = train.loss_chunk_tokens
    student = score_blocks(ctx.engine, ids, chunk_tokens=chunk)
    teacher = None
    if getattr(div.params, "kd_ratio", 0.0) > 0:
        with torch.no_grad():
            teacher = score_blocks(ctx.teacher, ids, chunk_tokens=chunk)
    mask = torch.ones_like(ids[:, 1:], dtype=torch.bool)
    global_tokens = float(mask.numel() * train.grad_accum * w)
    loss, metrics = div.pretrain_loss(student, teacher, ids[:, 1:], mask, global_tokens)
    return loss, {k: float(v) for k, v in metrics.items()}
