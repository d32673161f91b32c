"""What every kind of training step shares: the step's context, rollouts drawn from the data, scoring of a
rollout, backward with the non-finite guard, the gradient norm and the common metrics.

The two kinds of step build on it: :mod:`minillm_distill.train.token_step` (token-level divergences: fresh rollouts
every step) and :mod:`minillm_distill.train.phase_step` (sequence-level ones: a rollout phase reused for
``ppo_epochs`` passes). :func:`minillm_distill.train.step.train_step` chooses between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from minillm_distill.data.batches import collate, micro_batch_indices
from minillm_distill.data.encode import EncodedData
from minillm_distill.divergence import Divergence, Reducer
from minillm_distill.plugin_outputs import PluginOutputs
from minillm_distill.recipe.schema import TrainSpec
from minillm_distill.rollout import PhaseBuffer, PromptBatch, RolloutBatch
from minillm_distill.sampler import Sampler, SamplerContext
from minillm_distill.scoring.forward import score_responses, teacher_scores
from minillm_distill.scoring.walk import ResponseScores
from minillm_distill.seeds import derive_seed
from minillm_distill.train import distributed as dist_utils
from minillm_distill.train.cached_teacher import DATA_INDICES


@dataclass
class StepContext:
    """What a training step works with. Of the recipe it holds only the sections a step reads: ``train``, the
    run's ``seed``, and ``sharded`` (ZeRO-3: the models' parameters are split across ranks)."""

    train: TrainSpec
    seed: int
    sharded: bool
    engine: Any
    teacher: Any | None
    tokenizer: Any
    sampler: Sampler
    divergence: Divergence
    data: EncodedData
    device: torch.device
    pretrain_blocks: torch.Tensor | None = None
    outputs: PluginOutputs = field(default_factory=lambda: PluginOutputs(None, None))
    cache: Any | None = None  # a TeacherCache standing in for the teacher (``teacher_cache:``)
    buffer: PhaseBuffer | None = field(default=None)
    grad_norm: float | None = None  # the last step's, computed before the update (ZeRO 0)
    skip_reason: str | None = None  # why the last step's update was skipped (non-finite loss or gradient)


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


def sample_rollouts(
    ctx: StepContext, data_index: int, n_micro: int, step: int, teacher_logits_bytes: int = 0
) -> list[RolloutBatch]:
    """Rollouts of ``n_micro`` micro-batches drawn from the prompts of data slot ``data_index``; each may keep
    ``teacher_logits_bytes`` of teacher logits (:attr:`SamplerContext.teacher_logits_bytes`)."""
    r, w = dist_utils.rank(), dist_utils.world_size()
    train = ctx.train
    indices = micro_batch_indices(
        len(ctx.data),
        seed=ctx.seed,
        step=data_index,
        micro=train.micro_batch_size,
        grad_accum=n_micro,
        world_size=w,
        rank=r,
    )
    out = []
    for m, idx in enumerate(indices):
        batch = _to(collate(ctx.data, idx, ctx.tokenizer.pad_token_id), ctx.device)
        gen = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, data_index, r, m, 1))
        sctx = SamplerContext(
            student=ctx.engine.module,
            teacher=ctx.teacher,
            tokenizer=ctx.tokenizer,
            step=step,
            generator=gen,
            seed=ctx.seed,
            rank=r,
            synced=ctx.sharded and w > 1,
            teacher_logits_bytes=teacher_logits_bytes,
        )
        rollout = ctx.outputs.rollout(ctx.sampler, batch, ctx.sampler.sample(batch, sctx))
        if ctx.cache is not None:  # the cache is read by record: which records these rows are
            rollout.extras[DATA_INDICES] = [int(i) for i in idx]
        out.append(rollout.to(ctx.device))
    return out


def backward_micro(ctx: StepContext, loss: torch.Tensor, fallback: torch.Tensor, last: bool, bad: bool) -> bool:
    """Backward one micro-batch; a non-finite loss on any rank turns the rest of the step into exact zeros
    and the update is skipped (LR 0 for this step). Returns the updated ``bad`` flag."""
    world_size, gas = dist_utils.world_size(), ctx.train.grad_accum
    (nonfinite,) = dist_utils.all_reduce_max([0.0 if math.isfinite(loss.item()) else 1.0], ctx.device)
    bad = bad or bool(nonfinite)
    if bad:
        loss = fallback
    # DeepSpeed divides by grad_accum and averages over ranks; undo both so the gradient is that of the
    # step's loss as normalised by the divergence (global counts)
    ctx.engine.backward(loss * (world_size * gas))
    ctx.skip_reason = "non-finite loss" if bad else None
    if last:
        ctx.grad_norm = None if bad else _local_grad_norm(ctx.engine)
        if not bad and ctx.grad_norm is not None and not math.isfinite(ctx.grad_norm):
            # a finite loss with a non-finite gradient (a plugin's backward, an overflow): the update would
            # write inf/nan into every weight, so the gradients are zeroed and the update skipped
            for p in ctx.engine.module.parameters():
                if p.grad is not None:
                    p.grad.zero_()
            bad, ctx.grad_norm, ctx.skip_reason = True, None, "non-finite gradient"
    if last and bad:
        for group in ctx.engine.optimizer.param_groups:
            group["lr"] = 0.0  # skip the update; the scheduler sets the next step's LR afterwards
    skipped_before = getattr(ctx.engine, "skipped_steps", 0)
    ctx.engine.step()
    if last and not bad and getattr(ctx.engine, "skipped_steps", 0) > skipped_before:
        # ZeRO 1-3 check the reduced gradients themselves (ranks agree) and skipped this update: report it as
        # skipped, and keep the LR schedule on the step count as at ZeRO 0 (DeepSpeed holds it back a step)
        fp16 = bool(getattr(ctx.engine, "fp16_enabled", lambda: False)())
        bad, ctx.grad_norm = True, None
        ctx.skip_reason = FP16_OVERFLOW if fp16 else "non-finite gradient"
        scheduler = getattr(ctx.engine, "lr_scheduler", None)
        if scheduler is not None:
            scheduler.step()
    return bad


#: the skip reason of an fp16 step whose scaled gradients overflowed: routine while the loss scale settles, so
#: it does not count towards ``train.max_bad_steps``
FP16_OVERFLOW = "fp16 loss-scale overflow"


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


def step_grad_norm(ctx: StepContext, bad: bool) -> float | None:
    """DeepSpeed's global gradient norm, or (ZeRO 0 / fp32, where it gives None) the one computed before the
    update; ``None`` only for a skipped step."""
    if bad:
        return None
    norm = ctx.engine.get_global_grad_norm()
    if norm is None:
        norm = ctx.grad_norm
    return float(norm) if norm is not None else None


def common_metrics(ctx: StepContext, rollouts: list[RolloutBatch], global_tokens: float) -> dict[str, Any]:
    lens = [float(r.response_mask.sum(1).float().mean()) for r in rollouts]
    (mean_len,) = dist_utils.all_reduce_sum([sum(lens) / len(lens)], ctx.device)
    return {
        "response_tokens": int(global_tokens),
        "response_length": mean_len / dist_utils.world_size(),
        **sampler_metrics(rollouts),
    }


def sampler_metrics(rollouts: list[RolloutBatch]) -> dict[str, float]:
    """``sampler/NAME``: the mean of each number the sampler reported (``RolloutBatch.metrics``) over the
    micro-batches, on every rank, that report it. Collective under several processes (ranks may report
    different names)."""
    local: dict[str, list[float]] = {}
    for r in rollouts:
        for name, value in r.metrics.items():
            total, count = local.get(name, [0.0, 0.0])
            local[name] = [total + float(value), count + 1.0]
    merged: dict[str, list[float]] = {}
    for part in dist_utils.all_gather_json(local):
        for name, (total, count) in part.items():
            m = merged.setdefault(name, [0.0, 0.0])
            m[0] += total
            m[1] += count
    return {f"sampler/{name}": total / count for name, (total, count) in sorted(merged.items())}


def empty_loss(scores: ResponseScores) -> torch.Tensor:
    """A zero loss still connected to the student's graph (an empty slice: never nan)."""
    return scores.source.reshape(-1)[:0].float().sum()


def score_rollout(
    ctx: StepContext, r: RolloutBatch, with_teacher: bool
) -> tuple[ResponseScores, ResponseScores | None]:
    """The student's scores (with grad) and the teacher's (no grad): from the teacher's hidden states the
    sampler kept while decoding when it has them, else one teacher forward."""
    chunk = ctx.train.loss_chunk_tokens
    student = score_responses(ctx.engine, r, chunk_tokens=chunk)
    teacher = None
    if with_teacher and ctx.teacher is not None:
        teacher = teacher_scores(ctx.teacher, r, chunk_tokens=chunk)
    return student, teacher
