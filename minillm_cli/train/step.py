"""One optimizer step: rollout (sampler) -> score (forward passes) -> loss -> backward -> step.

Token-level divergences sample fresh rollouts every step. Sequence-level divergences (MiniLLM) sample a
rollout *phase* buffer, let the divergence prepare it (rewards, returns, advantages) once, then train
``ppo_epochs`` passes over it; the buffer is part of the checkpoint so a resumed run continues mid-phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from minillm_cli.data.batches import collate, micro_batch_indices
from minillm_cli.data.encode import EncodedData
from minillm_cli.divergence import (
    Divergence,
    Reducer,
    SequenceDivergence,
    StepNorm,
    TokenDivergence,
    cross_entropy_per_token,
    divergence_fn,
)
from minillm_cli.errors import RecipeError
from minillm_cli.recipe.schema import Recipe
from minillm_cli.sampler import PromptBatch, RolloutBatch, Sampler, SamplerContext
from minillm_cli.scores import ResponseScores, walk_tokens
from minillm_cli.train import distributed as dist_utils
from minillm_cli.train.score import score_blocks, score_responses


def derive_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (recipe seed, step, rank, micro-batch...)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


@dataclass
class PhaseBuffer:
    """This rank's rollouts of one phase and what the divergence prepared from them."""

    phase: int
    rollouts: list[RolloutBatch]
    prepared: list[dict[str, torch.Tensor]]
    metrics: dict[str, float]


@dataclass
class StepContext:
    recipe: Recipe
    engine: Any
    teacher: Any | None
    tokenizer: Any
    sampler: Sampler
    divergence: Divergence
    data: EncodedData
    device: torch.device
    pretrain_blocks: torch.Tensor | None = None
    buffer: PhaseBuffer | None = field(default=None)
    grad_norm: float | None = None  # the last step's, computed before the update (ZeRO 0)


class DistReducer(Reducer):
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def _reduce(self, t: torch.Tensor, op: str) -> torch.Tensor:
        import torch.distributed as dist

        if not dist.is_initialized() or dist.get_world_size() == 1:
            return t
        x = t.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(x, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
        return x.to(t.device, t.dtype)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t, "sum")

    def max(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t, "max")

    def min(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t, "min")


def _to(batch: PromptBatch, device: torch.device) -> PromptBatch:
    return PromptBatch(*(t.to(device) if t is not None else None for t in vars(batch).values()))


def _sample(
    ctx: StepContext, data_index: int, n_micro: int, step: int, teacher_logits_bytes: int = 0
) -> list[RolloutBatch]:
    """Rollouts of ``n_micro`` micro-batches drawn from the prompts of data slot ``data_index``; each may keep
    ``teacher_logits_bytes`` of teacher logits (:attr:`SamplerContext.teacher_logits_bytes`)."""
    r, w = dist_utils.rank(), dist_utils.world_size()
    train = ctx.recipe.train
    indices = micro_batch_indices(
        len(ctx.data),
        seed=ctx.recipe.seed,
        step=data_index,
        micro=train.micro_batch_size,
        grad_accum=n_micro,
        world=w,
        rank=r,
    )
    out = []
    for m, idx in enumerate(indices):
        batch = _to(collate(ctx.data, idx, ctx.tokenizer.pad_token_id), ctx.device)
        gen = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.recipe.seed, data_index, r, m, 1))
        sctx = SamplerContext(
            student=ctx.engine.module,
            teacher=ctx.teacher,
            tokenizer=ctx.tokenizer,
            step=step,
            generator=gen,
            seed=ctx.recipe.seed,
            rank=r,
            synced=ctx.recipe.engine.zero_stage == 3 and w > 1,
            teacher_logits_bytes=teacher_logits_bytes,
        )
        out.append(ctx.sampler.sample(batch, sctx).to(ctx.device))
    return out


def _backward_micro(ctx: StepContext, loss: torch.Tensor, fallback: torch.Tensor, last: bool, bad: bool) -> bool:
    """Backward one micro-batch; a non-finite loss on any rank turns the rest of the step into exact zeros
    and the update is skipped (LR 0 for this step). Returns the updated ``bad`` flag."""
    world, gas = dist_utils.world_size(), ctx.recipe.train.grad_accum
    (nonfinite,) = dist_utils.all_reduce_max([0.0 if math.isfinite(loss.item()) else 1.0], ctx.device)
    bad = bad or bool(nonfinite)
    if bad:
        loss = fallback
    # DeepSpeed divides by grad_accum and averages over ranks; undo both so the gradient is that of the
    # step's loss as normalised by the divergence (global counts)
    ctx.engine.backward(loss * (world * gas))
    if last and bad:
        for group in ctx.engine.optimizer.param_groups:
            group["lr"] = 0.0  # skip the update; the scheduler sets the next step's LR afterwards
    if last:
        ctx.grad_norm = None if bad else _local_grad_norm(ctx.engine)
    ctx.engine.step()
    return bad


def _local_grad_norm(engine: Any) -> float | None:
    """The step's gradient norm (before clipping) from the parameters' ``.grad`` where they hold the whole
    reduced gradient (ZeRO 0); ``None`` where DeepSpeed partitions gradients (it reports the norm itself)."""
    if int(getattr(engine, "zero_optimization_stage", lambda: 0)()) != 0:
        return None
    sq = 0.0
    for p in engine.module.parameters():
        if p.grad is not None:
            sq += float(p.grad.detach().float().pow(2).sum())
    return math.sqrt(sq)


def _grad_norm(ctx: StepContext, bad: bool) -> float | None:
    """DeepSpeed's global gradient norm, or (ZeRO 0 / fp32, where it gives None) the one computed before the
    update; ``None`` only for a skipped step."""
    if bad:
        return None
    norm = ctx.engine.get_global_grad_norm()
    if norm is None:
        norm = ctx.grad_norm
    return float(norm) if norm is not None else None


def _common_metrics(ctx: StepContext, rollouts: list[RolloutBatch], global_tokens: float) -> dict[str, Any]:
    lens = [float(r.response_mask.sum(1).float().mean()) for r in rollouts]
    (mean_len,) = dist_utils.all_reduce_sum([sum(lens) / len(lens)], ctx.device)
    return {"response_tokens": int(global_tokens), "response_length": mean_len / dist_utils.world_size()}


def train_step(ctx: StepContext, step: int) -> dict[str, Any]:
    """Runs optimizer step ``step`` (0-based) and returns its metrics (identical on every rank)."""
    torch.manual_seed(derive_seed(ctx.recipe.seed, step, dist_utils.rank(), 0))
    if isinstance(ctx.divergence, SequenceDivergence):
        return _sequence_step(ctx, step)
    return _token_step(ctx, step)


def _token_step(ctx: StepContext, step: int) -> dict[str, Any]:
    engine = ctx.engine
    rollouts = _sample(ctx, step, ctx.recipe.train.grad_accum, step)
    (global_tokens,) = dist_utils.all_reduce_sum([float(sum(int(r.response_mask.sum()) for r in rollouts))], ctx.device)
    global_tokens = max(global_tokens, 1.0)
    lr = float(engine.get_lr()[0])
    kd_ratio = ctx.recipe.train.kd_ratio
    loss_sum, bad = 0.0, False
    for i, r in enumerate(rollouts):
        student, teacher = _score(ctx, r, ctx.divergence.needs_teacher)
        total = token_loss_sum(ctx.divergence, student, teacher, r.response_ids, r.response_mask.bool(), kd_ratio)
        loss = total / global_tokens
        bad = _backward_micro(ctx, loss, _empty(student), i == len(rollouts) - 1, bad)
        if not bad:
            loss_sum += loss.item()
    (loss_global,) = dist_utils.all_reduce_sum([loss_sum], ctx.device)
    return {
        "loss": float("nan") if bad else loss_global,
        "lr": lr,
        "grad_norm": _grad_norm(ctx, bad),
        **_common_metrics(ctx, rollouts, global_tokens),
        "skipped": bad,
    }


def _empty(scores: ResponseScores) -> torch.Tensor:
    """A zero loss still connected to the student's graph (an empty slice: never nan)."""
    return scores.source.reshape(-1)[:0].float().sum()


def _score(ctx: StepContext, r: RolloutBatch, with_teacher: bool) -> tuple[ResponseScores, ResponseScores | None]:
    """The student's scores (with grad) and the teacher's (no grad): from the teacher's hidden states the
    sampler kept while decoding when it has them, else one teacher forward."""
    chunk = ctx.recipe.train.loss_chunk_tokens
    student = score_responses(ctx.engine, r, chunk_tokens=chunk)
    teacher = None
    if with_teacher and ctx.teacher is not None:
        teacher = teacher_scores(ctx.teacher, r, chunk_tokens=chunk)
    return student, teacher


def phase_logits_share(ctx: StepContext, n_micro: int) -> int:
    """Bytes of teacher logits each of a phase's ``n_micro`` micro-batches may keep: an even share of
    ``train.phase_teacher_logits_mib`` when the phase runs more than one PPO epoch over its rollouts (with one,
    the teacher's output layer runs once either way), else 0."""
    epochs = int(getattr(ctx.divergence, "ppo_epochs", 1) or 1)
    if epochs <= 1 or n_micro <= 0:
        return 0
    return ctx.recipe.train.phase_teacher_logits_mib * 2**20 // n_micro


def teacher_scores(teacher: Any, r: RolloutBatch, *, chunk_tokens: int | None = None) -> ResponseScores:
    """The teacher's scores of a rollout, without a forward pass when the rollout carries the teacher's
    logits (``RolloutBatch.teacher_logits``) or hidden states (``RolloutBatch.teacher_hidden``) from decoding."""
    from minillm_cli.train.score import output_head

    if r.teacher_logits is not None:
        return ResponseScores(
            logits=r.teacher_logits, chunk_tokens=chunk_tokens, normalised=bool(r.teacher_logits_normalised)
        )
    if r.teacher_hidden is not None:
        head = output_head(teacher)
        if head is not None:
            return ResponseScores(hidden=r.teacher_hidden, head=head, chunk_tokens=chunk_tokens)
    with torch.no_grad():
        return score_responses(teacher, r, chunk_tokens=chunk_tokens)


def token_loss_sum(
    divergence: Divergence,
    student: ResponseScores,
    teacher: ResponseScores | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    kd_ratio: float = 1.0,
) -> torch.Tensor:
    """Sum over valid tokens of the divergence, mixed with the cross entropy when ``kd_ratio`` < 1, in one
    chunk walk (the student's logits of each chunk computed once for both)."""
    assert isinstance(divergence, TokenDivergence)
    per_token = divergence_fn(divergence)
    if not divergence.needs_teacher:
        teacher = None
    temperature = float(getattr(divergence.params, "temperature", 1.0))
    if kd_ratio >= 1.0:
        return walk_tokens(student, teacher, targets, mask, per_token, temperature=temperature).values.sum()
    if temperature != 1.0 or (teacher is not None and teacher.vocab_size != student.vocab_size):
        # the cross entropy is over the student's own vocabulary at temperature 1: its own walk
        div = walk_tokens(student, teacher, targets, mask, per_token, temperature=temperature).values.sum()
        ce = walk_tokens(student, None, targets, mask, _CROSS_ENTROPY.per_token).values.sum()
        return kd_ratio * div + (1.0 - kd_ratio) * ce

    def both(s: torch.Tensor, t: torch.Tensor | None, tg: torch.Tensor) -> torch.Tensor:
        return kd_ratio * per_token(s, t, tg) + (1.0 - kd_ratio) * cross_entropy_per_token(s, tg)

    return walk_tokens(student, teacher, targets, mask, both).values.sum()


class _TargetCrossEntropy(TokenDivergence):
    """Cross entropy on the response tokens, mixed in when ``train.kd_ratio`` < 1."""

    name = "cross_entropy"
    needs_teacher = False

    def per_token(self, student_logits, teacher_logits, targets):
        return cross_entropy_per_token(student_logits, targets)


_CROSS_ENTROPY = _TargetCrossEntropy()


# -- sequence-level (policy gradient) ---------------------------------------------------------------------


def phase_layout(ctx: StepContext) -> tuple[int, int]:
    """(micro-batches per rank per phase, optimizer steps per phase)."""
    train = ctx.recipe.train
    div = ctx.divergence
    assert isinstance(div, SequenceDivergence)
    per_rank_seqs = None
    if div.rollouts_per_phase is not None:
        per_rank_seqs = math.ceil(div.rollouts_per_phase / dist_utils.world_size())
    n_micro = train.grad_accum if per_rank_seqs is None else math.ceil(per_rank_seqs / train.micro_batch_size)
    n_micro = max(train.grad_accum, math.ceil(n_micro / train.grad_accum) * train.grad_accum)
    return n_micro, div.ppo_epochs * n_micro // train.grad_accum


def _sequence_step(ctx: StepContext, step: int) -> dict[str, Any]:
    engine, div = ctx.engine, ctx.divergence
    assert isinstance(div, SequenceDivergence)
    gas = ctx.recipe.train.grad_accum
    n_micro, steps_per_phase = phase_layout(ctx)
    phase, j = divmod(step, steps_per_phase)
    new_phase = ctx.buffer is None or ctx.buffer.phase != phase
    if new_phase:
        rollouts = _sample(ctx, phase, n_micro, step, phase_logits_share(ctx, n_micro))
        if any(r.behaviour_logprobs is None for r in rollouts):
            raise RecipeError(
                f"divergence {div.name!r} needs on-policy rollouts with the student's log-probs, which sampler "
                f"{ctx.sampler.name!r} does not record",
                details=["sampler.name: use teacher_mixed (MiniLLM) or student"],
            )
        prepared, phase_metrics = div.prepare(rollouts, DistReducer(ctx.device))
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
    order = torch.randperm(
        n_micro, generator=torch.Generator().manual_seed(derive_seed(ctx.recipe.seed, phase, epoch, 7))
    )
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
        student, teacher = _score(ctx, r, True)
        loss, metrics = div.loss(student, teacher, r, buf.prepared[i], norm)
        pt_loss, pt_metrics = _pretrain_term(ctx, step, k)
        loss = loss + pt_loss
        for name, v in {**metrics, **pt_metrics}.items():
            sums[name] = sums.get(name, 0.0) + float(v)
        bad = _backward_micro(ctx, loss, _empty(student), k == len(batches) - 1, bad)
        if not bad:
            loss_sum += loss.item()
    names = sorted(sums)
    reduced = dist_utils.all_reduce_sum([loss_sum] + [sums[n] for n in names], ctx.device)
    row = {
        "loss": float("nan") if bad else reduced[0],
        "lr": lr,
        "grad_norm": _grad_norm(ctx, bad),
        **_common_metrics(ctx, batches, g_tokens),
        "phase": phase,
        "ppo_epoch": epoch,
        **dict(zip(names, reduced[1:], strict=True)),
        **{f"rollout/{k}": v for k, v in buf.metrics.items()},
        "skipped": bad,
    }
    return row


def _pretrain_term(ctx: StepContext, step: int, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
    blocks = ctx.pretrain_blocks
    div = ctx.divergence
    assert isinstance(div, SequenceDivergence)
    if blocks is None:
        return torch.zeros((), device=ctx.device), {}
    train = ctx.recipe.train
    w, r = dist_utils.world_size(), dist_utils.rank()
    idx = micro_batch_indices(
        blocks.size(0),
        seed=ctx.recipe.seed + 1,
        step=step,
        micro=train.micro_batch_size,
        grad_accum=train.grad_accum,
        world=w,
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
