"""Next-token calibration on references (the ECE of generative benchmarks) against a hand-worked example."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from minillm_distill.byte_tokenizer import byte_level_tokenizer
from minillm_distill.eval.analysis import token_calibration


class ConstantLM(torch.nn.Module):
    """Every position predicts the same distribution: logit 2 for token 0, 1 for token 1, 0 elsewhere."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(max_position_embeddings=1024)

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., 0], logits[..., 1] = 2.0, 1.0
        return SimpleNamespace(logits=logits)


def test_token_calibration_hand_example():
    tok = byte_level_tokenizer()
    vocab = len(tok)  # 257
    first, second = tok.convert_ids_to_tokens([0, 1])  # the byte symbols of ids 0 and 1
    reference = tok.convert_tokens_to_string([first, first, second])  # ids [0, 0, 1]
    assert tok(reference, add_special_tokens=False)["input_ids"] == [0, 0, 1]
    res = token_calibration(ConstantLM(vocab), tok, ["prompt"], [reference])
    # confidence = e^2 / (e^2 + e + 255) at every position; predicted token 0: right, right, wrong
    conf = math.exp(2) / (math.exp(2) + math.e + (vocab - 2))
    assert res.confidences == pytest.approx([conf] * 3)
    assert res.correct == [True, True, False]
    assert res.accuracy == pytest.approx(200 / 3)
    # all three confidences fall in one bin: ECE = |accuracy - confidence|
    assert res.ece == pytest.approx(abs(2 / 3 - conf))
