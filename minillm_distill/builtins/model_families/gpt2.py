"""GPT-2 family (``model_type: gpt2``): no pad token, so pad = EOS (<|endoftext|>)."""

from __future__ import annotations

from minillm_distill.api import ModelFamily, ScratchParams


class GPT2Family(ModelFamily):
    name = "gpt2"
    description = "GPT-2 (openai-community/gpt2 ... gpt2-xl)"
    model_types = ("gpt2",)

    def build_config(self, scratch: ScratchParams, *, vocab_size, bos_token_id, eos_token_id, pad_token_id):
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=scratch.max_positions,
            n_embd=scratch.hidden,
            n_layer=scratch.layers,
            n_head=scratch.heads,
            n_inner=scratch.mlp,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
