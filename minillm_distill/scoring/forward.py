"""Scoring: one forward pass over prompt + response, keeping the final hidden states that predict response
tokens and a handle on the output layer (:class:`~minillm_distill.scoring.walk.ResponseScores`), never their logits.

The forward runs through the model (or the DeepSpeed engine around it) as usual, so every hook runs (ZeRO-3
gathering, LoRA adapters), with ``output_hidden_states=True`` and ``logits_to_keep=1``: the model computes the
logits of one position only. The last entry of ``hidden_states`` is the output layer's input in
``transformers``' causal LMs; that is checked once per model against the logits the model itself returns (the
one kept position), applying what the config declares (``final_logit_softcapping``, ``logit_scale``). A model
that fails the check, has no ``get_output_embeddings()`` or no ``logits_to_keep``, is scored on the full path
(``[B, T, V]`` logits) with one log line.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from functools import lru_cache
from typing import Any

import torch

from minillm_distill.model_facts import unwrap_base
from minillm_distill.rollout import RolloutBatch
from minillm_distill.scoring.walk import OutputHead, ResponseScores

log = logging.getLogger("minillm.score")

_VERDICT: weakref.WeakKeyDictionary[torch.nn.Module, str | None] = weakref.WeakKeyDictionary()
"""Per model: ``None`` when the hidden-state path holds, else why it falls back to full logits."""


@lru_cache(maxsize=32)
def _accepted(forward_cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(forward_cls.forward).parameters)


def sequence_inputs(batch: RolloutBatch) -> dict[str, torch.Tensor]:
    """Left-padded prompt followed by right-padded response, with explicit position ids."""
    ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    mask = torch.cat([batch.prompt_mask, batch.response_mask], dim=1)
    pos = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


def output_head(model: Any) -> OutputHead | None:
    """The model's output layer with the post-processing its config declares, or ``None``."""
    inner = unwrap_base(model)
    get = getattr(inner, "get_output_embeddings", None)
    module = get() if callable(get) else None
    if not isinstance(module, torch.nn.Module):
        return None
    config = getattr(inner, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    return OutputHead(
        module,
        softcap=float(softcap) if isinstance(softcap, (int, float)) and softcap else None,
        scale=float(scale) if isinstance(scale, (int, float)) and scale != 1 else None,
    )


def _fallback_reason(model: Any) -> str | None:
    inner = unwrap_base(model)
    if output_head(model) is None:
        return "it has no get_output_embeddings()"
    accepted = _accepted(type(inner))
    if "logits_to_keep" not in accepted:
        return "its forward takes no logits_to_keep"
    return None


def _forward(model: Any, inputs: dict[str, torch.Tensor], **extra: Any) -> Any:
    accepted = _accepted(type(unwrap_base(model)))
    if "position_ids" not in accepted:
        inputs = {k: v for k, v in inputs.items() if k != "position_ids"}
    return model(**inputs, use_cache=False, **extra)


def _verify(model: Any, head: OutputHead, hidden_last: torch.Tensor, logits_last: torch.Tensor) -> str | None:
    """Whether the head applied to the last hidden state gives the model's own logits (one position)."""
    with torch.no_grad():
        mine = head(hidden_last).float()
    theirs = logits_last.detach().float()
    if mine.shape != theirs.shape:
        return f"its output layer gives shape {tuple(mine.shape)}, its logits {tuple(theirs.shape)}"
    tol = 1e-4 if theirs.dtype == torch.float32 and hidden_last.dtype == torch.float32 else 5e-2
    scale = max(float(theirs.abs().max()), 1.0)
    diff = float((mine - theirs).abs().max())
    if not diff <= tol * scale:
        return f"its forward changes the logits after the output layer (max difference {diff:.3g})"
    return None


def score_positions(
    model: Any,
    inputs: dict[str, torch.Tensor],
    keep: slice,
    *,
    chunk_tokens: int | None = None,
    full: bool = False,
) -> ResponseScores:
    """Scores at positions ``keep`` of a forward over ``inputs`` (``input_ids``, optional ``attention_mask`` and
    ``position_ids``). ``full=True`` forces the full-logits path."""
    inner = unwrap_base(model)
    reason = "asked for" if full else _VERDICT.get(inner, _fallback_reason(model))
    if reason is None:
        head = output_head(model)
        assert head is not None
        out = _forward(model, inputs, output_hidden_states=True, logits_to_keep=1)
        last = out.hidden_states[-1]
        if inner not in _VERDICT:
            reason = _verify(model, head, last[:, -1:], out.logits[:, -1:])
            _VERDICT[inner] = reason
            if reason is not None:
                log.info("scoring %s on the full-logits path: %s", type(inner).__name__, reason)
        if reason is None:
            return ResponseScores(hidden=last[:, keep], head=head, chunk_tokens=chunk_tokens)
    elif not full and inner not in _VERDICT:
        _VERDICT[inner] = reason
        log.info("scoring %s on the full-logits path: %s", type(inner).__name__, reason)
    accepted = _accepted(type(inner))
    extra = {}
    if "logits_to_keep" in accepted and keep.start is not None and keep.start < 0 and keep.stop == -1:
        extra = {"logits_to_keep": -keep.start}  # only the positions kept (and the last one) get logits
        keep = slice(0, -1)
    out = _forward(model, inputs, **extra)
    return ResponseScores(logits=out.logits[:, keep], chunk_tokens=chunk_tokens)


def score_responses(
    model: Any, batch: RolloutBatch, *, chunk_tokens: int | None = None, full: bool = False
) -> ResponseScores:
    """Scores of the response tokens: row t predicts ``response_ids[:, t]``. ``model`` is a causal LM or a
    DeepSpeed engine around one (a PEFT model too); ``position_ids`` is passed only where its forward takes
    it."""
    tr = batch.response_ids.size(1)
    return score_positions(model, sequence_inputs(batch), slice(-(tr + 1), -1), chunk_tokens=chunk_tokens, full=full)


def teacher_scores(teacher: Any, r: RolloutBatch, *, chunk_tokens: int | None = None) -> ResponseScores:
    """The teacher's scores of a rollout, without a forward pass when the rollout carries the teacher's
    logits (``RolloutBatch.teacher_logits``) or hidden states (``RolloutBatch.teacher_hidden``) from decoding."""
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


def score_blocks(model: Any, ids: torch.Tensor, *, chunk_tokens: int | None = None) -> ResponseScores:
    """Scores of a corpus block ``[B, L]``: row t predicts ``ids[:, t + 1]`` (``L - 1`` rows)."""
    return score_positions(model, {"input_ids": ids}, slice(0, -1), chunk_tokens=chunk_tokens)


def response_logits(model: Any, batch: RolloutBatch) -> torch.Tensor:
    """``[B, T_r, V]`` logits of the full path; row t predicts ``response_ids[:, t]`` (for tests and tools; the
    training loss uses :func:`score_responses`)."""
    scores = score_responses(model, batch, full=True)
    assert scores.logits is not None
    return scores.logits
