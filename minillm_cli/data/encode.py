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
    for rec in records:
        p = tokenizer(family.format_prompt(rec.instruction, rec.input), add_special_tokens=True)["input_ids"]
        if len(p) > max_prompt_length:
            dropped += 1
            continue
        r = tokenizer(rec.response or "", add_special_tokens=False)["input_ids"] + [eos]
        prompts.append(p)
        responses.append(r[:max_response_length])
    return EncodedData(prompts, responses, dropped)
