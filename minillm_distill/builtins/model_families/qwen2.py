"""Qwen2 / Qwen2.5 family (``model_type: qwen2``).

Qwen checkpoints pad their embedding matrix beyond the tokenizer (e.g. 151936 vs 152064 rows across sizes);
minillm compares teacher and student on the shared rows only (see ``minillm_distill.models.check_vocab``).
"""

from __future__ import annotations

from minillm_distill.api import ModelFamily, ScratchParams
from minillm_distill.builtins.model_families.llama import llama_like_kwargs


class Qwen2Family(ModelFamily):
    name = "qwen2"
    description = "Qwen2 / Qwen2.5 (Qwen/*)"
    model_types = ("qwen2",)

    def build_config(self, scratch: ScratchParams, *, vocab_size, bos_token_id, eos_token_id, pad_token_id):
        from transformers import Qwen2Config

        return Qwen2Config(**llama_like_kwargs(scratch, vocab_size, bos_token_id, eos_token_id, pad_token_id))
