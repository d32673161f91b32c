"""OPT family (``model_type: opt``): the tokenizer prepends </s> as BOS; pad id 1."""

from __future__ import annotations

from minillm_distill.api import ModelFamily, ScratchParams


class OPTFamily(ModelFamily):
    name = "opt"
    description = "Meta OPT (facebook/opt-125m ... opt-66b)"
    model_types = ("opt",)

    def build_config(self, scratch: ScratchParams, *, vocab_size, bos_token_id, eos_token_id, pad_token_id):
        from transformers import OPTConfig

        return OPTConfig(
            vocab_size=vocab_size,
            hidden_size=scratch.hidden,
            word_embed_proj_dim=scratch.hidden,
            num_hidden_layers=scratch.layers,
            num_attention_heads=scratch.heads,
            ffn_dim=scratch.mlp,
            max_position_embeddings=scratch.max_positions,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
