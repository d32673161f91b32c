"""The MiniLLM divergence's per-chunk terms (log q of the target and the exact KL(q || p)) with their written-out
gradient (``minillm_distill/builtins/divergences/minillm/policy.py``) against the same terms composed from
autograd ops (the code before it), in one process, interleaved step by step (A B A B ...).

A step: student logits from hidden states through the output layer (with grad), teacher logits (without), the
terms, and backward to the hidden states and the layer's weight, at the MiniLLM phase benchmark's sizes
(``--tokens`` 512 response tokens, vocabulary 50,257, student width 64, teacher width 256). Prints each side's
median, the per-pair ratio with its spread, and the largest differences of values and gradients.

Run (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/minillm_terms.py --steps 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=50257)
    args = parser.parse_args()
    harness.as_minillm_does()
    harness.one_thread()
    import torch

    from minillm_distill.builtins.divergences._math import LOG_FLOOR
    from minillm_distill.builtins.divergences.minillm.policy import _chunk_terms

    def composed(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logq = torch.log_softmax(s, -1).clamp(min=LOG_FLOOR)
        target = logq.gather(-1, y[:, None]).squeeze(-1)
        logp = torch.log_softmax(t, -1).clamp(min=LOG_FLOOR)
        return torch.stack([target, (logq.exp() * (logq - logp)).sum(-1)], -1)

    g = torch.Generator().manual_seed(0)
    n, v = args.tokens, args.vocab
    hs = torch.randn(n, 64, generator=g).requires_grad_(True)
    ws = (torch.randn(v, 64, generator=g) * 0.02).requires_grad_(True)
    ht, wt = torch.randn(n, 256, generator=g), torch.randn(v, 256, generator=g) * 0.02
    y = torch.randint(0, v, (n,), generator=g)
    upstream = torch.randn(n, 2, generator=g)

    def step(fn) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
        hs.grad, ws.grad = None, None
        t0 = time.perf_counter()
        s = hs @ ws.T
        with torch.no_grad():
            t = ht @ wt.T
        out = fn(s, t, y)
        (out * upstream).sum().backward()
        return time.perf_counter() - t0, out.detach(), hs.grad, ws.grad

    systems = {"written-out gradient": _chunk_terms, "autograd composition": composed}
    first = {name: step(fn) for name, fn in systems.items()}
    times: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(args.steps):
        for name, fn in systems.items():
            times[name].append(step(fn)[0])
    a, b = first.values()
    print(f"minillm chunk terms, {n} tokens x vocab {v}, output layers 64 / 256 wide; {harness.machine_line()}")
    for name in systems:
        print(f"  {name:21s} s {harness.summary(times[name])}")
    ratio = harness.ratio_summary(times["written-out gradient"], times["autograd composition"])
    print(f"  written-out / autograd per pair: {ratio}")
    diffs = [float((x - z).abs().max()) for x, z in zip(a[1:], b[1:], strict=True)]
    print(f"  max |diff|: values {diffs[0]:.2e}, hidden-state grad {diffs[1]:.2e}, weight grad {diffs[2]:.2e}")


if __name__ == "__main__":
    main()
