"""Prompt tokenisation for evaluation: truncation that keeps the end, and left padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from minillm_distill.errors import UsageError
from minillm_distill.model_facts import max_positions


def prompt_budget(model: Any, max_prompt_tokens: int, max_new_tokens: int, *, setting: str = "--max-new-tokens") -> int:
    """How many prompt tokens fit: ``max_prompt_tokens``, less if the model's context cannot also hold
    ``max_new_tokens`` new tokens. ``setting`` names where ``max_new_tokens`` came from in an error (the
    command-line flag, or ``eval.max_new_tokens`` during training)."""
    budget = max_prompt_tokens
    limit = max_positions(model)
    if limit is not None:
        budget = min(budget, limit - max_new_tokens)
    if budget < 1:
        raise UsageError(
            f"{setting} {max_new_tokens} leaves no room for a prompt: the model accepts {limit} positions",
            hint=f"use {setting} below {limit}",
        )
    return budget


def encode_prompt(tokenizer: Any, text: str, budget: int) -> list[int]:
    """Token ids of ``text`` (with the tokenizer's special tokens unless it starts with BOS already, as a chat
    template writes it), cut to ``budget`` tokens by keeping the *end* (where the instruction's response
    template is); a leading BOS survives the cut."""
    from minillm_distill.data.chat import adds_special_tokens

    ids = list(tokenizer(text, add_special_tokens=adds_special_tokens(tokenizer, text))["input_ids"])
    if len(ids) <= budget:
        return ids
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and ids[0] == bos and budget > 1:
        return [bos, *ids[len(ids) - budget + 1 :]]
    return ids[len(ids) - budget :]


def left_pad(rows: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, P]`` ids and attention mask, padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask
