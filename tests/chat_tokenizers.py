"""Tokenizers with a chat template, built here (nothing is downloaded): byte-level BPE plus ChatML's
special tokens (as Qwen2.5 writes turns) or Llama-3's header/end-of-turn tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
STYLES = {
    "chatml": (CHATML_TEMPLATE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None),
    "llama3": (
        LLAMA3_TEMPLATE,
        ["<|end_of_text|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "<|begin_of_text|>",
    ),
}


def chat_tokenizer(style: str = "chatml", *, template: str | None = "default") -> Any:
    """A byte-level tokenizer with ``style``'s special tokens and chat template (``template=None``: none)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chat, specials, bos = STYLES[style]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    for s in specials:
        vocab[s] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=specials[0], pad_token=specials[0], bos_token=bos or specials[0]
    )
    fast.chat_template = chat if template == "default" else template
    return fast


def save_chat_tokenizer(directory: str | Path, style: str = "chatml", **kwargs: Any) -> Path:
    directory = Path(directory)
    chat_tokenizer(style, **kwargs).save_pretrained(directory)
    return directory
