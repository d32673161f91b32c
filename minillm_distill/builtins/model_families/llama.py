"""LLaMA family (``model_type: llama``): no pad token in the original tokenizer, so pad = EOS."""

from __future__ import annotations

from minillm_distill.api import ModelFamily, ScratchParams


def llama_like_kwargs(scratch: ScratchParams, vocab_size: int, bos: int, eos: int, pad: int) -> dict:
    """Config keywords shared by LLaMA-style architectures (LLaMA, Qwen2, Mistral)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=scratch.hidden,
        intermediate_size=scratch.intermediate or 4 * scratch.hidden,
        num_hidden_layers=scratch.layers,
        num_attention_heads=scratch.heads,
        num_key_value_heads=scratch.kv_heads or scratch.heads,
        max_position_embeddings=scratch.max_positions,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )


class LlamaFamily(ModelFamily):
    name = "llama"
    description = "LLaMA / LLaMA-2 / LLaMA-3 (meta-llama/*)"
    model_types = ("llama",)

    def build_config(self, scratch: ScratchParams, *, vocab_size, bos_token_id, eos_token_id, pad_token_id):
        from transformers import LlamaConfig

        return LlamaConfig(**llama_like_kwargs(scratch, vocab_size, bos_token_id, eos_token_id, pad_token_id))
