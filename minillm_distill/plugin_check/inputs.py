"""The logits the divergence checks feed a plugin: ordinary ones at three scales, and the hard cases a real run
produces — vocabulary entries masked with ``-inf``, probabilities that underflow to 0 in float32, and
near-one-hot distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

VOCAB = 11
ROWS = 16
BLOCKED = (2, 7)  # vocabulary entries set to -inf in both models by "-inf logits"


@dataclass(frozen=True)
class LogitPair:
    """``[ROWS, VOCAB]`` float32 student and teacher logits, targets ``[ROWS]``, and what they exercise."""

    name: str
    student: torch.Tensor
    teacher: torch.Tensor
    targets: torch.Tensor
    blocked: tuple[int, ...] = ()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def logit_pairs(rows: int = ROWS, vocab: int = VOCAB) -> list[LogitPair]:
    """Every input of the token-level checks (deterministic)."""
    pairs = []
    for i, scale in enumerate((0.1, 3.0, 30.0)):
        g = _gen(10 + i)
        s, t = torch.randn(rows, vocab, generator=g) * scale, torch.randn(rows, vocab, generator=g) * scale
        pairs.append(LogitPair(f"random logits (scale {scale:g})", s, t, torch.randint(0, vocab, (rows,), generator=g)))

    g = _gen(20)
    s, t = torch.randn(rows, vocab, generator=g) * 3, torch.randn(rows, vocab, generator=g) * 3
    blocked = torch.zeros(vocab, dtype=torch.bool)
    blocked[list(BLOCKED)] = True
    targets = torch.randint(0, vocab, (rows,), generator=g)
    targets = torch.where(blocked[targets], torch.zeros_like(targets), targets)  # targets are never blocked
    pairs.append(
        LogitPair(
            "-inf logits (masked vocabulary entries)",
            s.masked_fill(blocked, -math.inf),
            t.masked_fill(blocked, -math.inf),
            targets,
            BLOCKED,
        )
    )

    # a spread of 150 nats: the smallest probabilities underflow to exactly 0 in float32 while the logits stay
    # finite; the teacher's order is reversed, so each model puts ~0 mass where the other puts most of it
    g = _gen(30)
    ramp = torch.linspace(0.0, -150.0, vocab)
    s = ramp + torch.randn(rows, vocab, generator=g) * 0.5
    t = ramp.flip(0) + torch.randn(rows, vocab, generator=g) * 0.5
    pairs.append(LogitPair("tiny probabilities (underflow to 0)", s, t, torch.randint(0, vocab, (rows,), generator=g)))

    g = _gen(40)
    s, t = torch.randn(rows, vocab, generator=g) * 1e4, torch.randn(rows, vocab, generator=g) * 1e4
    pairs.append(LogitPair("near one-hot (logits ~1e4)", s, t, torch.randint(0, vocab, (rows,), generator=g)))
    return pairs
