"""Scoring forward pass: the kept logits are exactly the full forward's logits that predict response tokens."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_tiny

from minillm_distill.sampler import RolloutBatch
from minillm_distill.scoring.forward import response_logits, sequence_inputs


@pytest.mark.parametrize("family", ["gpt2", "llama", "opt"])
def test_response_logits_match_the_full_forward(family):
    model = build_tiny(family).model.eval()
    batch = RolloutBatch(
        prompt_ids=torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]]),
        prompt_mask=torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]),
        response_ids=torch.tensor([[20, 21, 0], [22, 23, 24]]),
        response_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]),
    )
    with torch.no_grad():
        kept = response_logits(model, batch)
        full = model(**sequence_inputs(batch), use_cache=False).logits
    assert kept.shape == (2, 3, full.size(-1))
    # logits at positions Tp-1 .. Tp+Tr-2 predict response tokens 0 .. Tr-1
    torch.testing.assert_close(kept, full[:, 4:7], rtol=1e-5, atol=1e-5)
