"""The loss path with PyTorch's transparent huge pages for large CPU blocks (``THP_MEM_ALLOC_ENABLE=1``, what
the ``minillm`` command sets: ``minillm_distill/host_memory.py``) against 4 KiB pages (``=0``), each round a fresh
one-thread process, alternating (A B A B ...).

Per round: a few out-of-place vocabulary-sized ops on a float32 ``[512, 50257]`` tensor, then ``--steps``
steps of scoring + loss + backward at the MiniLLM phase benchmark's sizes (GPT-2 student 2 x 64, teacher
4 x 256, random, vocabulary 50,257, batch 8 x (16 + 64) tokens) for the ``minillm`` divergence's per-token
terms (log q of the target and the exact KL(q || p)) and for ``fkl``, with the default chunking. Prints the
medians, the per-pair ratio huge / small pages, and each side's peak resident memory (the whole process).

Run (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/host_memory.py --rounds 4
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import tiny_models  # noqa: E402

VOCAB = 50257
B, PROMPT, RESPONSE = 8, 16, 64


def child(steps: int) -> dict:
    harness.one_thread()
    import torch

    from minillm_distill.builtins.divergences.minillm.policy import token_terms
    from minillm_distill.plugins import load_plugins
    from minillm_distill.scoring.forward import score_responses
    from minillm_distill.train.step import token_loss_sum

    out: dict = {"huge_pages": int(os.environ.get("THP_MEM_ALLOC_ENABLE") == "1")}
    x = torch.randn(512, VOCAB)
    for name, op in (("exp", torch.exp), ("log_softmax", lambda t: torch.log_softmax(t, -1))):
        op(x)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter()
            op(x)
            ts.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = 1000 * statistics.median(ts)
    del x

    torch.manual_seed(0)
    student = tiny_models.random_gpt2(VOCAB, 2, 64).train()
    teacher = tiny_models.random_gpt2(VOCAB, 4, 256).eval().requires_grad_(False)
    batch = tiny_models.random_rollout(VOCAB, B, PROMPT, RESPONSE)
    mask = batch.response_mask.bool()
    with torch.no_grad():
        t_scores = score_responses(teacher, batch)
    fkl = load_plugins().divergences.get("fkl")()

    def minillm_terms() -> torch.Tensor:
        _, logq, kl = token_terms(score_responses(student, batch), t_scores, batch.response_ids, mask)
        return logq.sum() + kl.sum()

    def fkl_loss() -> torch.Tensor:
        return token_loss_sum(fkl, score_responses(student, batch), t_scores, batch.response_ids, mask)

    for name, loss_fn in (("minillm_terms", minillm_terms), ("fkl", fkl_loss)):
        ts = []
        for _ in range(steps + 1):
            for p in student.parameters():
                p.grad = None
            t0 = time.perf_counter()
            loss_fn().backward()
            ts.append(time.perf_counter() - t0)
        out[f"{name}_s"] = statistics.median(ts[1:])
    out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per loss per round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.emit(child(args.steps))
        return
    script = [str(Path(__file__).resolve()), "--child", "--steps", str(args.steps)]

    def system(flag: str):
        def run(_round: int) -> dict:
            os.environ["THP_MEM_ALLOC_ENABLE"] = flag  # read by PyTorch at the child's first allocation
            return harness.run_child(script)

        return run

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    kernel = thp.read_text().strip() if thp.exists() else "unknown"
    print(f"host memory: kernel THP {kernel}; vocab {VOCAB}, batch {B} x ({PROMPT} + {RESPONSE}), loss + backward")
    print("machine:", harness.machine_line())
    res = harness.alternate({"huge": system("1"), "small": system("0")}, args.rounds)
    for key in ("exp_ms", "log_softmax_ms", "minillm_terms_s", "fkl_s", "peak_gib"):
        a = [r[key] for r in res["huge"]]
        b = [r[key] for r in res["small"]]
        print(f"  {key:16s} huge pages  {harness.summary(a)}")
        print(f"  {'':16s} small pages {harness.summary(b)}")
        print(f"  {'':16s} huge/small per pair {harness.ratio_summary(a, b)}")


if __name__ == "__main__":
    main()
