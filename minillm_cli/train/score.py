"""Scoring: one forward pass over prompt + response, keeping only the logits that predict response tokens."""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch

from minillm_cli.sampler import RolloutBatch


@lru_cache(maxsize=32)
def _accepted(forward_cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(forward_cls.forward).parameters)


def sequence_inputs(batch: RolloutBatch) -> dict[str, torch.Tensor]:
    """Left-padded prompt followed by right-padded response, with explicit position ids."""
    ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    mask = torch.cat([batch.prompt_mask, batch.response_mask], dim=1)
    pos = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


def response_logits(model: Any, batch: RolloutBatch) -> torch.Tensor:
    """``[B, T_r, V]`` logits; row t predicts ``response_ids[:, t]``. ``model`` is a causal LM or a DeepSpeed
    engine around one; ``position_ids`` / ``logits_to_keep`` are passed only where its forward takes them."""
    tr = batch.response_ids.size(1)
    inputs = sequence_inputs(batch)
    accepted = _accepted(type(getattr(model, "module", model)))
    if "position_ids" not in accepted:
        inputs.pop("position_ids")
    extra = {"logits_to_keep": tr + 1} if "logits_to_keep" in accepted else {}
    out = model(**inputs, use_cache=False, **extra)
    return out.logits[:, -(tr + 1) : -1]
