"""The decode loop's token draw (inverse transform sampling): the frequencies of the given distribution, never
a token of probability 0, exactly the hot token of a one-hot row, unnormalised rows, and an error (not a wrong
token) for a row without mass."""

from __future__ import annotations

import math

import pytest
import torch

from minillm_distill.generation import _draw


def test_draw_frequencies_follow_the_distribution():
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([[0.0, 0.1, 0.0, 0.6, 0.3, 0.0], [0.25, 0.25, 0.0, 0.0, 0.0, 0.5]])
    n = 20000
    counts = torch.zeros_like(probs, dtype=torch.float64)
    for _ in range(n // 100):
        drawn = _draw(probs.repeat(100, 1), g).view(100, 2)
        for row in range(2):
            counts[row] += torch.bincount(drawn[:, row], minlength=6).double()
    assert bool((counts[probs == 0] == 0).all())  # a zero-probability token is never drawn
    expected = probs.double() * n
    keep = expected > 0
    stat = float((((counts - expected) ** 2)[keep] / expected[keep]).sum())
    df = int(keep.sum()) - 2
    assert stat < df + 5 * math.sqrt(2 * df), stat
    # the check has power: the uniform distribution over the same support is rejected
    uniform = keep.double() / keep.sum(-1, keepdim=True) * n
    assert float((((counts - uniform) ** 2)[keep] / uniform[keep]).sum()) > 100


def test_draw_picks_the_hot_token_and_accepts_unnormalised_rows():
    g = torch.Generator().manual_seed(1)
    hot = torch.tensor([0, 7, 50256, 100])
    one_hot = torch.zeros(4, 50257)
    one_hot[torch.arange(4), hot] = 1.0
    for _ in range(20):
        assert torch.equal(_draw(one_hot, g), hot)
    scaled = torch.tensor([[0.0, 3.0, 0.0], [5.0, 0.0, 0.0]])  # rows summing to 3 and 5
    for _ in range(20):
        assert _draw(scaled, g).tolist() == [1, 0]


def test_draw_is_reproducible_from_the_generator_state():
    probs = torch.softmax(torch.randn(8, 300, generator=torch.Generator().manual_seed(2)), -1)
    a = [_draw(probs, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(a[0], a[1])


@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf")])
def test_a_row_without_finite_mass_is_an_error(bad):
    probs = torch.tensor([[0.5, 0.5], [bad, bad]])
    with pytest.raises(ValueError, match="no finite positive mass"):
        _draw(probs, torch.Generator().manual_seed(0))
