"""What a sampler's output must be: :func:`rollout_problems` lists every way a
:class:`~minillm_distill.rollout.RolloutBatch` breaks the contract for the prompt batch it was sampled from.

One function, two users: ``minillm plugins check`` (its ``contract`` check, on tiny models) and ``minillm
distill`` (every rollout of a run, before scoring reads it: a broken rollout is a plugin error naming the
sampler, not a raw ``IndexError`` deep in scoring or a run that trains on garbage). Every check is linear in
the rollout's size, far below the cost of the forward passes that follow.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from minillm_distill.rollout import PromptBatch, RolloutBatch

PER_TOKEN = ("behaviour_logprobs", "teacher_logprobs", "importance_weights")


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(n) for n in t.shape)


def rollout_problems(rollout: Any, prompts: PromptBatch, vocab: int | None) -> list[str]:
    """Every problem of ``rollout`` as the output for ``prompts`` (empty: it keeps the contract).

    ``vocab``: the number of vocabulary rows the models share (response ids must be below it), or None.
    Checked: the prompts are the batch's (same rows, same order), ``response_ids`` ``[B, T]`` long, a 0/1
    right-padded ``response_mask`` of the same shape, ids in range where the mask is 1, every per-token tensor
    ``[B, T]`` and finite, importance weights above 0, ``teacher_hidden`` ``[B, T, H]`` finite and
    ``teacher_logits`` ``[B, T, V]`` finite."""
    if not isinstance(rollout, RolloutBatch):
        return [f"sample returned {type(rollout).__name__}, not a RolloutBatch"]
    r, problems = rollout, []
    b = int(prompts.prompt_ids.size(0))
    if _shape(r.prompt_ids) != _shape(prompts.prompt_ids) or not torch.equal(
        r.prompt_ids.to(prompts.prompt_ids.device), prompts.prompt_ids
    ):
        problems.append(
            f"prompt_ids {_shape(r.prompt_ids)} are not the batch's prompts {_shape(prompts.prompt_ids)} "
            "(same rows, same order: a dropped or reordered row)"
        )
    elif _shape(r.prompt_mask) != _shape(prompts.prompt_mask) or not torch.equal(
        r.prompt_mask.to(prompts.prompt_mask.device).long(), prompts.prompt_mask.long()
    ):
        problems.append("prompt_mask is not the batch's")
    ids, mask = r.response_ids, r.response_mask
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor):
        return [*problems, "response_ids and response_mask must be tensors"]
    if ids.dim() != 2 or ids.size(0) != b:
        return [*problems, f"response_ids has shape {_shape(ids)}, not [{b}, T] (one row per prompt)"]
    if ids.dtype != torch.long:
        problems.append(f"response_ids has dtype {ids.dtype}, not torch.long")
    if _shape(mask) != _shape(ids):
        return [*problems, f"response_mask has shape {_shape(mask)}, not response_ids' {_shape(ids)}"]
    m = mask.long()
    if bool(((m != 0) & (m != 1)).any()):
        problems.append("response_mask has values other than 0 and 1")
    if bool((m[:, 1:] > m[:, :-1]).any()):
        problems.append("response_mask has holes (a 1 after a 0 in a row): it must be right-padded")
    valid = m != 0
    if vocab is not None and not ids.dtype.is_floating_point:
        outside = ((ids < 0) | (ids >= vocab)) & valid
        if bool(outside.any()):
            bad = int(ids[outside][0])
            problems.append(f"response ids outside [0, {vocab}) inside the mask (e.g. {bad})")
    for name in PER_TOKEN:
        t = getattr(r, name)
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or _shape(t) != _shape(ids):
            got = _shape(t) if isinstance(t, torch.Tensor) else type(t).__name__
            problems.append(f"{name} has shape {got}, not response_ids' {_shape(ids)}")
            continue
        if not bool(torch.isfinite(t.float()).all()):
            problems.append(f"{name} has nan/inf values")
        elif name == "importance_weights" and bool((t.float()[valid] <= 0).any()):
            problems.append("importance_weights are not all > 0 inside the mask")
    for name, rank in (("teacher_hidden", 3), ("teacher_logits", 3)):
        t = getattr(r, name)
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != rank or _shape(t)[:2] != _shape(ids):
            got = _shape(t) if isinstance(t, torch.Tensor) else type(t).__name__
            problems.append(f"{name} has shape {got}, not [{b}, {ids.size(1)}, ...]")
        elif name == "teacher_hidden" and not bool(torch.isfinite(t[valid].float()).all()):
            problems.append(f"{name} has nan/inf values inside the mask")
    metrics = r.metrics
    if not isinstance(metrics, dict) or not all(isinstance(k, str) for k in metrics):
        problems.append(f"metrics is {type(metrics).__name__}, not a dict of names to numbers")
    else:
        for key, value in metrics.items():
            number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            if number is None or not math.isfinite(number):
                problems.append(f"metrics[{key!r}] is {value!r}, not a finite number")
    return problems


def state_problem(state: Any) -> str | None:
    """Why a sampler's ``state_dict()`` cannot be checkpointed (it must survive JSON), or None."""
    try:
        text = json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"state_dict() is not JSON: {exc}"
    if not isinstance(json.loads(text), dict):
        return f"state_dict() returned {type(state).__name__}, not a dict"
    return None
