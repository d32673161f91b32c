"""One ``max_positions`` for pre-flight, ``minillm eval`` and ``minillm generate``: each used to read its own
list of config keys, so a model whose config says ``seq_length`` passed pre-flight unchecked while eval cut its
prompts to it."""

from __future__ import annotations

import pytest
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, PretrainedConfig

from minillm_distill.errors import UsageError
from minillm_distill.eval.prompts import prompt_budget
from minillm_distill.model_facts import max_positions


class _Multimodal(PretrainedConfig):
    def get_text_config(self, *args, **kwargs):  # what transformers' multimodal configs do
        return LlamaConfig(max_position_embeddings=96)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (GPT2Config(n_positions=64), 64),
        (LlamaConfig(max_position_embeddings=128), 128),
        (PretrainedConfig(seq_length=32), 32),
        (PretrainedConfig(max_sequence_length=16), 16),
        (PretrainedConfig(), None),
        (PretrainedConfig(seq_length=0, max_sequence_length=True), None),  # not a length
        (_Multimodal(max_position_embeddings=5), 96),  # the text part's
    ],
)
def test_context_length_from_the_config(config, expected):
    assert max_positions(config) == expected


def test_a_model_reads_the_same_as_its_config():
    model = GPT2LMHeadModel(GPT2Config(n_positions=48, n_embd=8, n_layer=1, n_head=2, vocab_size=10))
    assert max_positions(model) == max_positions(model.config) == 48


def test_eval_budgets_prompts_by_the_same_length():
    class Model:
        config = PretrainedConfig(seq_length=32)

    assert prompt_budget(Model(), 100, 8) == 24  # 32 positions, 8 of them for the response
    with pytest.raises(UsageError, match="32 positions"):
        prompt_budget(Model(), 100, 32)
