"""Turning records into token ids with the run's prompt format (:mod:`minillm_distill.data.prompt_format`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minillm_distill.data.chat import adds_special_tokens
from minillm_distill.data.prompt_format import PromptFormatter
from minillm_distill.data.records import Record
from minillm_distill.model_family import ModelFamily


@dataclass
class EncodedData:
    prompts: list[list[int]]
    responses: list[list[int]]
    dropped_long_prompts: int

    def __len__(self) -> int:
        return len(self.prompts)


def encode_records(
    records: list[Record],
    tokenizer: Any,
    prompts: PromptFormatter | ModelFamily,
    *,
    max_prompt_length: int,
    max_response_length: int,
) -> EncodedData:
    """Prompts (formatted by ``prompts``: a formatter, or a model family for its own template) longer than
    ``max_prompt_length`` tokens are dropped (and counted); responses get their end token appended (EOS, or
    the chat template's end-of-turn token under ``chat``) and are cut to ``max_response_length`` tokens."""
    fmt = prompts if isinstance(prompts, PromptFormatter) else PromptFormatter("family", prompts, tokenizer)
    end = fmt.response_end_id()
    prompt_rows, responses, dropped = [], [], 0
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        # one tokenizer call per chunk: a fast tokenizer encodes the batch natively (~10x a call per text)
        prompt_ids = prompt_token_ids(tokenizer, [fmt.record_prompt(r) for r in chunk])
        response_ids = token_ids(tokenizer, [r.response or "" for r in chunk], False)
        for p, r in zip(prompt_ids, response_ids, strict=True):
            if len(p) > max_prompt_length:
                dropped += 1
                continue
            prompt_rows.append(p)
            responses.append((r + [end])[:max_response_length])
    return EncodedData(prompt_rows, responses, dropped)


BATCH = 4096


def prompt_token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of prompts, special tokens added unless a prompt starts with BOS already
    (:func:`minillm_distill.data.chat.adds_special_tokens`)."""
    flags = [adds_special_tokens(tokenizer, t) for t in texts]
    out: list[list[int]] = [[] for _ in texts]
    for flag in set(flags):
        rows = [i for i, f in enumerate(flags) if f == flag]
        for i, ids in zip(rows, token_ids(tokenizer, [texts[i] for i in rows], flag), strict=True):
            out[i] = ids
    return out


def token_ids(tokenizer: Any, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
    """Token ids of ``texts``, as ``tokenizer(text, add_special_tokens=...)["input_ids"]`` gives them one by one."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None:
        # the Rust tokenizer directly: transformers' per-encoding conversion costs as much as the encoding
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=add_special_tokens)]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]]
