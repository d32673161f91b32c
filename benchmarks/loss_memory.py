"""Peak memory of one training step's loss path at Qwen2's vocabulary (151,936), each configuration in its own
fresh process.

Models: Qwen2 built from config (student hidden 128 x 2 layers, teacher hidden 256 x 2 layers, float32),
prompt 16 tokens, every response token valid. The loss path is student scoring with grad, teacher scoring
without, the divergence (forward KL), and backward. Memory is the process's peak resident set size during the
loss path minus its resident size just before it (models and inputs already built).

* ``naive``: full logits of both models, float32 log-softmax of both, KL, backward.
* ``minillm``: this project's path (``score_responses`` + ``token_divergence_sum`` with ``fkl``: hidden states,
  logits one chunk at a time, recomputed in backward).

Usage (from the repository root; uses up to ~12 GiB, never run two at once)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loss_memory.py            # the README's table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loss_memory.py --chunks   # chunk size: memory and time

Prints one row per configuration; for ``minillm`` beside ``naive`` the memory ratio and the difference of the
two loss values.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

VOCAB = 151_936
PROMPT = 16
GIB = 1024**3


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _models():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    def build(hidden: int, seed: int):
        torch.manual_seed(seed)
        cfg = Qwen2Config(
            vocab_size=VOCAB,
            hidden_size=hidden,
            intermediate_size=hidden * 4,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            tie_word_embeddings=False,
        )
        return Qwen2ForCausalLM(cfg).float()

    student = build(128, 0).train()
    teacher = build(256, 1).eval().requires_grad_(False)
    return student, teacher


def one(path: str, batch: int, tokens: int, chunk: int | None) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from minillm_distill.divergence import token_divergence_sum
    from minillm_distill.plugins import load_plugins
    from minillm_distill.sampler import RolloutBatch
    from minillm_distill.scoring.forward import score_responses

    torch.set_num_threads(1)
    student, teacher = _models()
    g = torch.Generator().manual_seed(0)
    rollout = RolloutBatch(
        prompt_ids=torch.randint(0, VOCAB, (batch, PROMPT), generator=g),
        prompt_mask=torch.ones(batch, PROMPT, dtype=torch.long),
        response_ids=torch.randint(0, VOCAB, (batch, tokens), generator=g),
        response_mask=torch.ones(batch, tokens, dtype=torch.long),
    )
    ids = torch.cat([rollout.prompt_ids, rollout.response_ids], 1)
    mask = rollout.response_mask.bool()
    fkl = load_plugins().divergences.get("fkl")()
    base = _rss()
    peak_before = _peak()
    start = time.perf_counter()
    if path == "naive":
        s = student(input_ids=ids).logits[:, PROMPT - 1 : -1]
        with torch.no_grad():
            t = teacher(input_ids=ids).logits[:, PROMPT - 1 : -1]
        log_q = torch.log_softmax(s.float(), -1)
        log_p = torch.log_softmax(t.float(), -1)
        loss = (log_p.exp() * (log_p - log_q)).sum(-1)[mask].sum() / mask.sum()
    else:
        s = score_responses(student, rollout, chunk_tokens=chunk)
        with torch.no_grad():
            t = score_responses(teacher, rollout, chunk_tokens=chunk)
        total, n = token_divergence_sum(fkl, s, t, rollout.response_ids, mask)
        loss = total / n
    loss.backward()
    seconds = time.perf_counter() - start
    peak = _peak()
    head_grad = student.lm_head.weight.grad
    return {
        "path": path,
        "batch": batch,
        "tokens": tokens,
        "chunk": chunk,
        "loss": float(loss.detach()),
        "head_grad_norm": float(head_grad.norm()),
        # ru_maxrss is the peak since the process began: the loss path's own peak when it is above the build's
        "peak_gib": (max(peak, peak_before) - base) / GIB if peak > peak_before else float("nan"),
        "seconds": seconds,
    }


def run(path: str, batch: int, tokens: int, chunk: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--one", path, str(batch), str(tokens), str(chunk or 0)]
    # the minillm command's huge-page switch (minillm_distill/host_memory.py) unless the caller set it
    env = {"THP_MEM_ALLOC_ENABLE": "1", **os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        return {"path": path, "batch": batch, "tokens": tokens, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def naive_analytic_gib(batch: int, tokens: int) -> float:
    """What the naive path holds at its peak, counted in [B, T+P, V] / [B, T, V] float32 tensors: both models'
    full logits, the two log-softmaxes, exp(log p), the product, and backward's gradient of the logits and of
    the log-softmax (about 8 vocabulary-sized tensors)."""
    full = batch * (tokens + PROMPT) * VOCAB * 4
    kept = batch * tokens * VOCAB * 4
    return (2 * full + 6 * kept) / GIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=4, metavar=("PATH", "B", "T", "CHUNK"), help=argparse.SUPPRESS)
    parser.add_argument("--chunks", action="store_true", help="minillm at 2 x 512 with chunk 32..256")
    args = parser.parse_args()
    if args.one:
        path, b, t, c = args.one
        print(json.dumps(one(path, int(b), int(t), int(c) or None)))
        return
    print(
        f"loss-path peak memory, vocab {VOCAB}, prompt {PROMPT}, float32, one process per row, "
        f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', '1 (as the minillm command sets it)')}"
    )
    if args.chunks:
        for chunk in (32, 64, 128, 256):
            r = run("minillm", 2, 512, chunk)
            print(f"minillm 2x512 chunk {chunk:4d}: {r.get('peak_gib', float('nan')):6.3f} GiB  "
                  f"{r.get('seconds', float('nan')):6.2f} s  loss {r.get('loss')}")  # fmt: skip
        return
    for b, t in ((4, 512), (8, 256)):
        naive = run("naive", b, t)
        ours = run("minillm", b, t)
        if "error" in naive or "error" in ours:
            print(f"{b}x{t}: failed: {naive.get('error') or ours.get('error')}")
            continue
        ratio = ours["peak_gib"] / naive["peak_gib"]
        print(
            f"{b}x{t}: naive {naive['peak_gib']:.3f} GiB ({naive['seconds']:.1f} s), minillm {ours['peak_gib']:.3f} "
            f"GiB ({ours['seconds']:.1f} s), ratio {ratio:.3f}; loss naive {naive['loss']:.9f} minillm "
            f"{ours['loss']:.9f} (diff {abs(naive['loss'] - ours['loss']):.2e}), head-grad norm diff "
            f"{abs(naive['head_grad_norm'] - ours['head_grad_norm']):.2e}"
        )
    ours = run("minillm", 8, 512)
    print(
        f"8x512: minillm {ours.get('peak_gib', float('nan')):.3f} GiB ({ours.get('seconds', float('nan')):.1f} s); "
        f"naive not run (analytic ~{naive_analytic_gib(8, 512):.1f} GiB)"
    )


if __name__ == "__main__":
    main()
