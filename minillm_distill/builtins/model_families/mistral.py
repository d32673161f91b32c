"""Mistral family (``model_type: mistral``): LLaMA-style with sliding-window attention."""

from __future__ import annotations

from minillm_distill.api import ModelFamily, ScratchParams
from minillm_distill.builtins.model_families.llama import llama_like_kwargs


class MistralFamily(ModelFamily):
    name = "mistral"
    description = "Mistral (mistralai/*)"
    model_types = ("mistral",)

    def build_config(self, scratch: ScratchParams, *, vocab_size, bos_token_id, eos_token_id, pad_token_id):
        from transformers import MistralConfig

        kwargs = llama_like_kwargs(scratch, vocab_size, bos_token_id, eos_token_id, pad_token_id)
        return MistralConfig(sliding_window=scratch.max_positions, **kwargs)
