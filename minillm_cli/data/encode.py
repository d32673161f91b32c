"""Turning records into token ids with the model family's prompt template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minillm_cli.data.records import Record
from minillm_cli.model_family import ModelFamily


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
    family: ModelFamily,
    *,
    max_prompt_length: int,
    max_response_length: int,
) -> EncodedData:
    """Prompts longer than ``max_prompt_length`` tokens are dropped (and counted); responses get EOS
    appended and are cut to ``max_response_length`` tokens."""
    eos = tokenizer.eos_token_id
    prompts, responses, dropped = [], [], 0
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        # one tokenizer call per chunk: a fast tokenizer encodes the batch natively (~10x a call per text)
        prompt_ids = token_ids(tokenizer, [family.format_prompt(r.instruction, r.input) for r in chunk], True)
        response_ids = token_ids(tokenizer, [r.response or "" for r in chunk], False)
        for p, r in zip(prompt_ids, response_ids, strict=True):
            if len(p) > max_prompt_length:
                dropped += 1
                continue
            prompts.append(p)
            responses.append((r + [eos])[:max_response_length])
    return EncodedData(prompts, responses, dropped)


BATCH = 4096


def token_ids(tokenizer: Any, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
    """Token ids of ``texts``, as ``tokenizer(text, add_special_tokens=...)["input_ids"]`` gives them one by one."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None:
        # the Rust tokenizer directly: transformers' per-encoding conversion costs as much as the encoding
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=add_special_tokens)]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]]
