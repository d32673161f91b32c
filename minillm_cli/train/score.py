"""Scoring: one forward pass over prompt + response, keeping only the logits that predict response tokens."""

from __future__ import annotations

from typing import Any

import torch

from minillm_cli.sampler import RolloutBatch


def sequence_inputs(batch: RolloutBatch) -> dict[str, torch.Tensor]:
    """Left-padded prompt followed by right-padded response, with explicit position ids."""
    ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    mask = torch.cat([batch.prompt_mask, batch.response_mask], dim=1)
    pos = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


def response_logits(model: Any, batch: RolloutBatch) -> torch.Tensor:
    """``[B, T_r, V]`` logits; row t predicts ``response_ids[:, t]``."""
    tr = batch.response_ids.size(1)
    out = model(**sequence_inputs(batch), use_cache=False, logits_to_keep=tr + 1)
    return out.logits[:, :-1]
