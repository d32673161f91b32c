"""Divergence base classes and the core reduction every token-level divergence goes through.

A token-level divergence only says how to turn two rows of logits into one value per row
(:meth:`TokenDivergence.per_token`). The core here does everything else, the same way for every
divergence: it selects valid (masked-in) positions, aligns padded vocabularies to their shared rows,
applies the temperature to *both* logit tensors, computes the logits from the final hidden states one chunk
of tokens at a time (:func:`minillm_distill.scoring.walk.walk_tokens`, so no ``[batch, time, vocab]`` tensor nor its
gradient ever exists), checks the divergence's output on its first call, and divides the sum by the *global* number of
valid tokens, so the value does not depend on how a batch is split into micro-batches or ranks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from minillm_distill.registrable import PluginParams, Registrable
from minillm_distill.scoring.walk import DEFAULT_CHUNK_TOKENS, ChunkFn, ResponseScores, walk_tokens


class Divergence(Registrable):
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
        The inputs are read-only: the teacher's rows may be a view of logits kept for a later PPO epoch, and
        modifying such a view in place raises an error.
        """
        raise NotImplementedError


def cross_entropy_per_token(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log q(target) per row of ``[N, V]`` logits."""
    logq = torch.log_softmax(logits, dim=-1)
    return -logq.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


#: how far below 0 a divergence's value may be before the first-call check calls it wrong (float32 rounding
#: of a true divergence near 0 stays well above this)
NEGATIVE_TOLERANCE = -1e-4


def check_per_token_output(
    divergence: TokenDivergence, out: Any, n: int, *, needs_grad: bool = False, origin: str | None = None
) -> None:
    """The first-call check of a token divergence's ``per_token`` output: a ``[n]`` tensor, finite, not below
    :data:`NEGATIVE_TOLERANCE`, and carrying a gradient when the student's logits do (``needs_grad``). Raises
    :class:`~minillm_distill.errors.PluginError` naming the plugin (``origin``: who registered it, when known)."""
    from minillm_distill.errors import PluginError

    name = getattr(divergence, "name", type(divergence).__name__)
    who = origin or f"divergence {name!r}"
    where = f"{type(divergence).__module__}.{type(divergence).__qualname__}.per_token"
    hint = (
        "fix the plugin: per_token must return one value per row of its [N, V] logits (shape [N]), "
        "a true divergence (finite, >= 0), computed from the logits it is given (no .detach())"
    )

    def fail(message: str) -> PluginError:
        return PluginError(f"{who} {message}", details=[f"in {where}"], hint=hint)

    if not isinstance(out, torch.Tensor):
        raise fail(f"returned {type(out).__name__} from per_token, not a tensor")
    if tuple(out.shape) != (n,):
        raise fail(f"returned shape {tuple(out.shape)} from per_token for {n} tokens; expected ({n},)")
    values = out.detach().float()
    if n and not bool(torch.isfinite(values).all()):
        raise fail("returned non-finite values (nan or inf) from per_token")
    if n and float(values.min()) < NEGATIVE_TOLERANCE:
        low = float(values.min())
        raise fail(f"returned a negative value ({low:.4g}) from per_token; a divergence is never below 0")
    if needs_grad and not out.requires_grad:
        raise fail(
            "returned values without a gradient from per_token: they were computed from detached inputs (.detach(), "
            ".item(), torch.no_grad()), so training would change nothing"
        )


def _checked_per_token(divergence: TokenDivergence, origin: str | None) -> ChunkFn:
    def fn(s: torch.Tensor, t: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
        out = divergence.per_token(s, t, targets)
        if not getattr(divergence, "_output_checked", False) and targets.numel() > 0:
            check_per_token_output(divergence, out, int(targets.numel()), needs_grad=s.requires_grad, origin=origin)
            divergence._output_checked = True  # type: ignore[attr-defined]
        return out

    return fn


def divergence_fn(divergence: TokenDivergence, origin: str | None = None) -> ChunkFn:
    """``per_token`` as a chunk consumer for :func:`~minillm_distill.scoring.walk.walk_tokens` (checked on its first
    call in a run; ``origin`` names the plugin in the error, e.g. "divergence 'x' (plugin 'p', distribution d)")."""
    return _checked_per_token(divergence, origin)


def token_divergence_sum(
    divergence: TokenDivergence,
    student: ResponseScores | torch.Tensor,
    teacher: ResponseScores | torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> tuple[torch.Tensor, int]:
    """Sum of per-token values over valid positions, and the number of valid positions.

    ``student``/``teacher`` are :class:`~minillm_distill.scoring.walk.ResponseScores` (hidden states + output layer, or
    logits) or plain ``[..., V]`` logits tensors; ``targets`` and ``mask`` have their leading ``[B, T]`` shape.
    Teacher and student may have different vocabulary sizes (padded embedding rows): only the shared rows
    ``[:min(V_s, V_t)]`` are compared. A divergence without ``needs_teacher`` ignores ``teacher``. Logits are
    computed chunk by chunk (:func:`~minillm_distill.scoring.walk.walk_tokens`)."""
    if divergence.needs_teacher and teacher is None:
        raise ValueError(f"divergence {divergence.name!r} needs teacher logits")
    if not divergence.needs_teacher:
        # a teacher-free loss (sft) must not depend on teacher logits a caller happens to pass: in particular
        # they must not cut the student's vocabulary down to the teacher's size
        teacher = None
    temperature = float(getattr(divergence.params, "temperature", 1.0))
    walk = walk_tokens(
        student, teacher, targets, mask, divergence_fn(divergence), temperature=temperature, chunk_tokens=chunk_tokens
    )
    return walk.values.sum(), int(walk.index.numel())


def token_divergence_loss(
    divergence: TokenDivergence,
    student: ResponseScores | torch.Tensor,
    teacher: ResponseScores | torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_valid_tokens: int | None = None,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """Masked mean: sum over valid tokens / ``num_valid_tokens`` (the *global* count across
    micro-batches and ranks; defaults to this batch's own count)."""
    total, count = token_divergence_sum(divergence, student, teacher, targets, mask, chunk_tokens=chunk_tokens)
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


class PhaseParams(PluginParams):
    """Options of a sequence-level divergence that the training loop reads: how its rollout phases are laid
    out. Subclass it for the divergence's ``Params`` (and override a field to change its default); the loop
    reads nothing else of a plugin's options."""

    ppo_epochs: int = Field(1, ge=1, description="passes over each rollout buffer")
    rollouts_per_phase: int | None = Field(
        None, ge=1, description="sequences sampled per rollout phase across all ranks (None: one step's worth)"
    )


class SequenceDivergence(Divergence):
    """A divergence defined on whole sampled responses: a policy-gradient style loss (MiniLLM's reverse KL)
    that needs on-policy rollouts with the student's log-probs, i.e. a sampler with ``records_logprobs``
    (``student``, ``teacher_mixed``).

    How the loop drives it, per rollout *phase* (``rollouts_per_phase`` sequences over all ranks, default one
    optimizer step's worth):

    1. the sampler fills a buffer with this rank's micro-batches of the phase (:class:`RolloutBatch` each);
    2. :meth:`prepare` is called **once** with the whole buffer and turns it into per-token quantities
       (rewards, returns, advantages), one dict per micro-batch, plus the phase's metrics;
    3. for ``ppo_epochs`` passes over the buffer (shuffled, ``train.grad_accum`` micro-batches per optimizer
       step), :meth:`loss` is called per micro-batch with the *current* student's scores (with grad) and the
       teacher's (no grad), and, when the recipe has ``data.pretrain``, :meth:`pretrain_loss` on a block of
       the pretraining corpus; the sum of both is backpropagated.

    Losses and metrics returned by :meth:`loss` and :meth:`pretrain_loss` are this micro-batch's
    *contribution*: the loop sums them over the step's micro-batches and ranks, so divide sums by the step's
    global counts in :class:`StepNorm` (``norm.tokens`` for a mean over tokens, ``norm.sequences`` over
    sequences) and the result does not depend on how the step is split.

    Scores are :class:`~minillm_distill.scoring.walk.ResponseScores`: the final hidden states ``[B, T, H]`` at the
    response positions and the output layer (never ``[B, T, V]`` logits); row ``t`` predicts
    ``response_ids[:, t]``. Compute anything vocabulary-sized with :func:`~minillm_distill.scoring.walk.walk_tokens`
    (chunks of valid tokens, float32 logits cut to the vocabulary rows both models share, recomputed in
    backward); a plain logits tensor is accepted wherever scores are (:func:`~minillm_distill.scoring.walk.as_scores`).
    ``minillm plugins check`` runs a sequence divergence's methods on synthetic rollouts.
    """

    level: ClassVar[str] = "sequence"
    needs_teacher: ClassVar[bool] = True
    #: whether :meth:`prepare` reads ``RolloutBatch.teacher_logprobs`` (recorded while decoding): the recipe's
    #: sampler must then declare ``records_teacher_logprobs`` (checked before training, exit 3)
    needs_teacher_logprobs: ClassVar[bool] = False

    @property
    def ppo_epochs(self) -> int:
        """Passes over each rollout buffer (the ``ppo_epochs`` option when ``Params`` has one, else 1)."""
        return self._phase_option("ppo_epochs", 1)

    @property
    def rollouts_per_phase(self) -> int | None:
        """Sequences sampled per phase across all ranks (the ``rollouts_per_phase`` option; None: one
        optimizer step's worth)."""
        return self._phase_option("rollouts_per_phase", None)

    def _phase_option(self, name: str, default: Any) -> Any:
        if isinstance(self.params, PhaseParams):
            return getattr(self.params, name)
        if hasattr(self.params, name):  # declared without the base class: still read, for one release
            import warnings

            warnings.warn(
                f"divergence {self.name!r}: declare {name} by subclassing minillm_distill.api.PhaseParams for its "
                "Params; options that are not read from PhaseParams are ignored from the next release",
                DeprecationWarning,
                stacklevel=3,
            )
            return getattr(self.params, name)
        return default

    def prepare(self, batches: list[Any], reduce: Reducer) -> tuple[list[dict[str, torch.Tensor]], dict[str, float]]:
        """Once per phase: per-token quantities of the buffer, and the phase's metrics.

        ``batches``: this rank's micro-batches of the phase, each a :class:`~minillm_distill.rollout.RolloutBatch`
        as the sampler returned it, on the training device: ``response_ids`` / ``response_mask`` ``[B, T]``
        (EOS inside the mask), ``behaviour_logprobs`` (always present: the loop refuses a rollout without
        them) and, when the sampler recorded them, ``teacher_logprobs``, ``importance_weights``,
        ``teacher_hidden`` and ``extras``. ``reduce``: sums, maxima and minima over ranks (identity on one
        process), for statistics over the whole phase (e.g. whitening advantages); every rank must make the
        same calls in the same order.

        Returns one dict of tensors per micro-batch, in the order of ``batches`` (usually ``[B, T]``, aligned
        with ``response_ids``; saved in checkpoints, so tensors only), which :meth:`loss` gets back as
        ``prepared``; and metrics of the phase, already global (the same on every rank), logged as
        ``rollout/<name>``.
        """
        raise NotImplementedError

    def loss(
        self,
        student: ResponseScores,
        teacher: ResponseScores | None,
        batch: Any,
        prepared: dict[str, torch.Tensor],
        norm: StepNorm,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """This micro-batch's loss contribution (a 0-dim tensor connected to ``student``) and metrics.

        ``student`` (with grad) and ``teacher`` (no grad; ``None`` only without a teacher model) score
        ``batch.response_ids``: row ``t`` predicts ``response_ids[:, t]``, and only positions where
        ``batch.response_mask`` is 1 count. ``batch`` is the :class:`~minillm_distill.rollout.RolloutBatch` of
        this micro-batch (the same object :meth:`prepare` saw, or its copy restored from a checkpoint);
        ``prepared`` is the dict :meth:`prepare` returned for it; ``norm`` holds the optimizer step's global
        token and sequence counts. Metrics are contributions too (summed over micro-batches and ranks), as
        0-dim tensors or floats.
        """
        raise NotImplementedError

    def pretrain_loss(
        self,
        student: ResponseScores,
        teacher: ResponseScores | None,
        targets: torch.Tensor,
        mask: torch.Tensor,
        norm_tokens: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Auxiliary loss on a block of the pretraining corpus (``data.pretrain``), added to every micro-batch's
        loss; zero unless the divergence defines one.

        ``targets`` ``[b, L]`` are the block's tokens after its first, ``targets[:, t]`` predicted by row ``t``
        of ``student`` (with grad);
        ``mask`` ``[b, L]`` is all ones; ``norm_tokens`` is the optimizer step's global number of block tokens
        (divide a sum over tokens by it). ``teacher`` is the teacher's scores of the block when the
        divergence's ``Params`` has a ``kd_ratio`` above 0 (the teacher forward is skipped otherwise), else
        ``None``. Returns the contribution and its metrics, like :meth:`loss`.
        """
        src = student.source if isinstance(student, ResponseScores) else student
        zero = src.reshape(-1)[:0].float().sum()
        return zero, {}
