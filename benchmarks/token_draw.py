"""The decode loop's token draw at a 50k vocabulary: ``torch.multinomial`` against
``minillm_distill.generation._draw`` (inverse transform sampling), on the same ``[8, 50257]`` distributions, one
thread, interleaved call by call. Prints medians (ms per draw) and the per-pair ratio.

Run (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/token_draw.py --draws 200
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
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    harness.one_thread()
    import torch

    from minillm_distill.generation import _draw

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(args.batch, args.vocab, generator=g), -1)
    systems = {
        "multinomial": lambda: torch.multinomial(probs, 1, generator=g).squeeze(-1),
        "inverse transform": lambda: _draw(probs, g),
    }
    times: dict[str, list[float]] = {k: [] for k in systems}
    for f in systems.values():
        f()
    for _ in range(args.draws):
        for name, f in systems.items():
            t0 = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t0) * 1e3)
    print(f"token draw [{args.batch}, {args.vocab}], ms per draw; machine: {harness.machine_line()}")
    for name in systems:
        print(f"  {name:17s} {harness.summary(times[name])}")
    ratio = harness.ratio_summary(times["inverse transform"], times["multinomial"])
    print(f"  inverse transform / multinomial per pair: {ratio}")


if __name__ == "__main__":
    main()
