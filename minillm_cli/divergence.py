"""Divergence base classes and the core reduction every token-level divergence goes through.

A token-level divergence only says how to turn two rows of logits into one value per row
(:meth:`TokenDivergence.per_token`). The core here does everything else, the same way for every
divergence: it selects valid (masked-in) positions, aligns padded vocabularies to their shared rows,
applies the temperature to *both* logit tensors, upcasts to float32 one chunk of tokens at a time (so a
``[batch, time, vocab]`` float32 tensor never exists), and divides the sum by the *global* number of
valid tokens, so the value does not depend on how a batch is split into micro-batches or ranks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch.utils.checkpoint import checkpoint

from minillm_cli.components import Component, PluginParams

DEFAULT_CHUNK_TOKENS = 2048


class Divergence(Component):
    """Anything that turns a batch and model outputs into a loss."""

    level: ClassVar[str] = "token"
    needs_teacher: ClassVar[bool] = True


class TokenDivergenceParams(PluginParams):
    temperature: float = Field(
        1.0, gt=0, description="Divides both student and teacher logits before the softmax; no tau^2 factor."
    )


class TokenDivergence(Divergence):
    """A divergence with a value per token from two logit rows.

    Subclasses implement :meth:`per_token`. Values must be true divergences (KL includes the entropy
    term): ``D(p, p) = 0`` and ``D >= 0``.
    """

    level: ClassVar[str] = "token"
    Params: ClassVar[type[PluginParams]] = TokenDivergenceParams

    def per_token(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """Return ``[N]`` float32 values for ``[N, V]`` float32 logits (temperature already applied).

        ``targets`` holds the ``[N]`` token ids at those positions (used by cross-entropy style losses).
        """
        raise NotImplementedError


def cross_entropy_per_token(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log q(target) per row of ``[N, V]`` logits."""
    logq = torch.log_softmax(logits, dim=-1)
    return -logq.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


def _chunk_sum(
    divergence: TokenDivergence,
    student: torch.Tensor,
    teacher: torch.Tensor | None,
    targets: torch.Tensor,
) -> torch.Tensor:
    temperature = float(getattr(divergence.params, "temperature", 1.0))
    s = student.float() / temperature
    t = teacher.float() / temperature if teacher is not None else None
    return divergence.per_token(s, t, targets).sum()


def token_divergence_sum(
    divergence: TokenDivergence,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> tuple[torch.Tensor, int]:
    """Sum of per-token values over valid positions, and the number of valid positions.

    ``student_logits``/``teacher_logits`` are ``[..., V]`` (any leading shape), ``targets`` and ``mask``
    have the leading shape. Teacher and student may have different vocabulary sizes (padded embedding
    rows): only the shared rows ``[:min(V_s, V_t)]`` are compared. A divergence without ``needs_teacher``
    ignores ``teacher_logits``.
    """
    if divergence.needs_teacher and teacher_logits is None:
        raise ValueError(f"divergence {divergence.name!r} needs teacher logits")
    if not divergence.needs_teacher:
        # a teacher-free loss (sft) must not depend on teacher logits a caller happens to pass: in particular
        # they must not cut the student's vocabulary down to the teacher's size
        teacher_logits = None
    lead = mask.shape
    if student_logits.shape[:-1] != lead or targets.shape != lead:
        raise ValueError(
            f"shape mismatch: logits {tuple(student_logits.shape)}, targets {tuple(targets.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    vocab = student_logits.size(-1)
    if teacher_logits is not None:
        if teacher_logits.shape[:-1] != lead:
            raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} do not match mask {tuple(lead)}")
        vocab = min(vocab, teacher_logits.size(-1))
    idx = mask.reshape(-1).nonzero(as_tuple=True)[0]
    count = int(idx.numel())
    total = student_logits.new_zeros((), dtype=torch.float32)
    if count == 0:
        # keep the graph connected so backward works on an all-masked micro-batch; an empty slice, not
        # 0 * logits.sum(), which is nan when masked positions hold -inf or values whose sum overflows
        return total + student_logits.reshape(-1)[:0].float().sum(), 0
    s_rows = student_logits.reshape(-1, student_logits.size(-1))[:, :vocab]
    t_rows = teacher_logits.reshape(-1, teacher_logits.size(-1))[:, :vocab] if teacher_logits is not None else None
    flat_targets = targets.reshape(-1)
    for start in range(0, count, chunk_tokens):
        rows = idx[start : start + chunk_tokens]
        s = s_rows.index_select(0, rows)
        t = t_rows.index_select(0, rows).detach() if t_rows is not None else None
        tg = flat_targets.index_select(0, rows)
        if torch.is_grad_enabled() and s.requires_grad:
            # recompute the float32 softmaxes in backward instead of keeping them for every chunk
            part = checkpoint(_chunk_sum, divergence, s, t, tg, use_reentrant=False)
        else:
            part = _chunk_sum(divergence, s, t, tg)
        total = total + part
    return total, count


def token_divergence_loss(
    divergence: TokenDivergence,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_valid_tokens: int | None = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Masked mean: sum over valid tokens / ``num_valid_tokens`` (the *global* count across
    micro-batches and ranks; defaults to this batch's own count)."""
    total, count = token_divergence_sum(
        divergence, student_logits, teacher_logits, targets, mask, chunk_tokens=chunk_tokens
    )
    denom = num_valid_tokens if num_valid_tokens is not None else count
    return total / max(int(denom), 1)


# ---------------------------------------------------------------------------------------------------------
# Sequence-level divergences (policy gradient over sampled responses, e.g. MiniLLM)
# ---------------------------------------------------------------------------------------------------------


class Reducer:
    """Collectives a sequence-level divergence may use in :meth:`SequenceDivergence.prepare` (identity on one
    process). Each takes and returns a float64/float32 tensor of any shape, reduced elementwise over ranks."""

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def max(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def min(self, t: torch.Tensor) -> torch.Tensor:
        return t


class StepNorm:
    """Global counts of one optimizer step (all micro-batches, all ranks), for normalising losses so that the
    micro-batch contributions summed over micro-batches and ranks give the step's loss."""

    def __init__(self, tokens: float, sequences: float) -> None:
        self.tokens = max(float(tokens), 1.0)
        self.sequences = max(float(sequences), 1.0)


class SequenceDivergence(Divergence):
    """A divergence defined on whole sampled responses (needs a generating sampler such as ``teacher_mixed``).

    The loop calls :meth:`prepare` once per rollout phase with every micro-batch of the phase's buffer (this
    rank's share), then, for ``ppo_epochs`` passes over the buffer, :meth:`loss` per micro-batch with the
    current student's logits. Losses and metrics returned by :meth:`loss` are this micro-batch's contribution:
    the loop sums them over micro-batches and ranks.
    """

    level: ClassVar[str] = "sequence"
    needs_teacher: ClassVar[bool] = True

    @property
    def ppo_epochs(self) -> int:
        return int(getattr(self.params, "ppo_epochs", 1))

    @property
    def rollouts_per_phase(self) -> int | None:
        """Sequences sampled per phase across all ranks (None: one optimizer step's worth)."""
        return getattr(self.params, "rollouts_per_phase", None)

    def prepare(self, batches: list[Any], reduce: Reducer) -> tuple[list[dict[str, torch.Tensor]], dict[str, float]]:
        """Per-token quantities of the buffer (rewards, returns, advantages), one dict per micro-batch, and
        phase metrics (already global)."""
        raise NotImplementedError

    def loss(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        batch: Any,
        prepared: dict[str, torch.Tensor],
        norm: StepNorm,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def pretrain_loss(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
        mask: torch.Tensor,
        norm_tokens: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Auxiliary loss on a pretraining-corpus block (``targets[t]`` is predicted by ``student_logits[t]``);
        zero unless the divergence defines one."""
        zero = student_logits.reshape(-1)[:0].float().sum()
        return zero, {}
