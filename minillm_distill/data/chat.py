"""A tokenizer's chat template: rendering a prompt's turns, and the end-of-turn token that closes a response
(``<|im_end|>`` for ChatML/Qwen, ``<|eot_id|>`` for Llama-3), which counts as EOS in training and decoding."""

from __future__ import annotations

import weakref
from typing import Any

_MARKER = "MINILLMRESPONSEMARKER"
_END_OF_TURN: weakref.WeakKeyDictionary[Any, tuple[str, int | None]] = weakref.WeakKeyDictionary()


def chat_template(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    return template if isinstance(template, str) and template.strip() else None


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt text: ``messages`` through the chat template, with the assistant's generation prompt."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def adds_special_tokens(tokenizer: Any, text: str) -> bool:
    """Whether encoding a prompt adds the tokenizer's special tokens: yes, unless the text already starts
    with the BOS token (a chat template that writes its own, as Llama-3's does). Training, eval and generate
    all encode prompts by this one rule."""
    bos = getattr(tokenizer, "bos_token", None)
    return not (isinstance(bos, str) and bos and text.startswith(bos))


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant's content, or ``None`` (no
    template, or the template closes a turn with ordinary text)."""
    template = chat_template(tokenizer)
    if template is None:
        return None
    try:
        cached = _END_OF_TURN.get(tokenizer)
    except TypeError:  # not weak-referenceable: no cache
        return _find_end_of_turn(tokenizer)
    if cached is None or cached[0] != template:
        cached = (template, _find_end_of_turn(tokenizer))
        _END_OF_TURN[tokenizer] = cached
    return cached[1]


def _find_end_of_turn(tokenizer: Any) -> int | None:
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARKER}]
    try:
        text = tokenizer.apply_chat_template(turns, tokenize=False)
    except Exception:  # a template that refuses this conversation: it names no end-of-turn token
        return None
    after = text.split(_MARKER, 1)[1] if _MARKER in text else ""
    if not after:
        return None
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    if not ids:
        return None
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return int(ids[0]) if ids[0] in special else None
