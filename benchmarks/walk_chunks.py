"""Scoring + loss + backward of one micro-batch in one process, with the chunk walk as one plain chunk against
recomputed chunks (``train.loss_chunk_tokens``), interleaved step by step so load changes hit every setting
alike. Prints each setting's median step and the per-pair ratio to the one-chunk path.

* ``--shape demo`` (default): GPT-2 3 layers x 128 (the demo's teacher), vocabulary 127, batch 64 x (16 prompt
  + 12 response) tokens, the ``sft`` divergence; 2 and 12 chunks.
* ``--shape phase``: the MiniLLM phase benchmark's models (GPT-2 student 2 x 64, teacher 4 x 256, vocabulary
  50,257, random), batch 8 x (16 + 64) tokens, ``fkl`` with the teacher's scores; one chunk of all 512 tokens
  (not recomputed), 2 chunks of 256 (the default chunk size at this vocabulary) and 16 of 32, both recomputed.

Run (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/walk_chunks.py --steps 30
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/walk_chunks.py --shape phase --steps 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import tiny_models  # noqa: E402

SHAPES = {
    # vocab, (layers, width) of the student / teacher, batch, prompt, response, divergence, settings
    "demo": (127, (3, 128), None, 64, 16, 12, "sft", {"one chunk": 768, "2 chunks": 384, "12 chunks": 64}),
    "phase": (50257, (2, 64), (4, 256), 8, 16, 64, "fkl", {"one chunk": 512, "2 chunks": 256, "16 chunks": 32}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="demo")
    args = parser.parse_args()
    vocab, student_size, teacher_size, b, prompt, response, div_name, settings = SHAPES[args.shape]
    harness.as_minillm_does()
    harness.one_thread()
    import torch

    from minillm_distill.plugins import load_plugins
    from minillm_distill.scoring.forward import score_responses
    from minillm_distill.train.step import token_loss_sum

    torch.manual_seed(0)
    model = tiny_models.random_gpt2(vocab, *student_size).train()
    teacher = tiny_models.random_gpt2(vocab, *teacher_size).eval().requires_grad_(False) if teacher_size else None
    div = load_plugins().divergences.get(div_name)()
    batch = tiny_models.random_rollout(vocab, b, prompt, response)
    mask = batch.response_mask.bool()
    teacher_scores = None
    if teacher is not None:
        with torch.no_grad():
            teacher_scores = score_responses(teacher, batch)

    def step(chunk: int | None) -> float:
        for p in model.parameters():
            p.grad = None
        t0 = time.perf_counter()
        scores = score_responses(model, batch, chunk_tokens=chunk)
        if teacher_scores is not None:
            teacher_scores.chunk_tokens = chunk
        token_loss_sum(div, scores, teacher_scores, batch.response_ids, mask).backward()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in settings}
    for chunk in settings.values():
        step(chunk)
    for _ in range(args.steps):
        for name, chunk in settings.items():
            times[name].append(step(chunk))
    print(
        f"{args.shape}: vocab {vocab}, batch {b} x ({prompt} + {response}), {div_name}, scoring + loss + backward; "
        f"machine: {harness.machine_line()}"
    )
    for name in settings:
        print(f"  {name:9s} s {harness.summary(times[name])}")
    for name in list(settings)[1:]:
        print(f"  one chunk / {name} per pair: {harness.ratio_summary(times['one chunk'], times[name])}")


if __name__ == "__main__":
    main()
