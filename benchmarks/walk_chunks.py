"""Loss + backward of one demo-sized SFT micro-batch in one process, with the chunk walk as one plain chunk
against 2 and 12 recomputed chunks (``train.loss_chunk_tokens``), interleaved step by step so load changes hit
every setting alike.

Model: GPT-2 3 layers x 128 (the demo's teacher), vocabulary 127, batch 64 x (16 prompt + 12 response)
tokens, the ``sft`` divergence. Prints each setting's median step and the per-pair ratio to the one-chunk path.

Run (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/walk_chunks.py --steps 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

SETTINGS = {"one chunk": None, "2 chunks": 384, "12 chunks": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    harness.one_thread()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from minillm_cli.plugins import load_plugins
    from minillm_cli.sampler import RolloutBatch
    from minillm_cli.train.score import score_responses
    from minillm_cli.train.step import token_loss_sum

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=127, n_embd=128, n_layer=3, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).train()
    div = load_plugins().divergences.get("sft")()
    b = 64
    batch = RolloutBatch(
        torch.randint(3, 120, (b, 16)),
        torch.ones(b, 16, dtype=torch.long),
        torch.randint(3, 120, (b, 12)),
        torch.ones(b, 12, dtype=torch.long),
    )
    mask = batch.response_mask.bool()

    def step(chunk: int | None) -> float:
        for p in model.parameters():
            p.grad = None
        t0 = time.perf_counter()
        scores = score_responses(model, batch, chunk_tokens=chunk)
        token_loss_sum(div, scores, None, batch.response_ids, mask).backward()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for chunk in SETTINGS.values():
        step(chunk)
    for _ in range(args.steps):
        for name, chunk in SETTINGS.items():
            times[name].append(step(chunk))
    print("demo-sized SFT loss + backward; machine:", harness.machine_line())
    for name in SETTINGS:
        print(f"  {name:9s} s {harness.summary(times[name])}")
    for name in list(SETTINGS)[1:]:
        print(f"  one chunk / {name} per pair: {harness.ratio_summary(times['one chunk'], times[name])}")


if __name__ == "__main__":
    main()
