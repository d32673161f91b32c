"""Settle the ``cpu`` budget's student on the Dolly *validation* split (never the test split): which 11 of the
teacher's 30 blocks to keep, and the SFT learning rate. Prints the response cross entropy (nats per token) of
each candidate on validation records, before training and after a short SFT.

    OMP_NUM_THREADS=2 python scripts/settle_cut.py --split runs/reproduce-cpu/data --records 64 --steps 20
    OMP_NUM_THREADS=2 python scripts/settle_cut.py --split runs/reproduce-cpu/data --lrs '' \
        --only "first 5 + last 6,first 8 + last 8,first 10 + last 10"
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

CANDIDATES = {
    "every 3rd + last": [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29],
    "first 10 + last": [*range(10), 29],
    "first 5 + last 6": [*range(5), *range(24, 30)],
    "first 8 + last 8": [*range(8), *range(22, 30)],
    "first 10 + last 10": [*range(10), *range(20, 30)],
}


def encode(tokenizer, records, max_prompt=128, max_response=64):
    from minillm_distill.data.chat import render_prompt

    rows = []
    for r in records:
        text = r["instruction"] + (f"\n\n{r['context']}" if r.get("context") else "")
        prompt = tokenizer(render_prompt(tokenizer, [{"role": "user", "content": text}]), add_special_tokens=False)
        response = tokenizer(r["response"], add_special_tokens=False).input_ids[: max_response - 1] + [2]
        rows.append((prompt.input_ids[-max_prompt:], response))
    return rows


def batch(rows):
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), 2)
    labels = torch.full((len(rows), width), -100)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        seq = p + r
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p) : len(seq)] = torch.tensor(r)
        att[i, : len(seq)] = 1
    return ids, labels, att


@torch.no_grad()
def cross_entropy(model, rows, size=16):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), size):
        ids, labels, att = batch(rows[i : i + size])
        logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((target != -100).sum())
    return total / count


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from minillm_distill.cut import cut_model
    from minillm_distill.fetch import fetch
    from minillm_distill.gguf import converted_folder

    ap = argparse.ArgumentParser()
    ap.add_argument("--split", type=Path, required=True, help="folder with train.jsonl and valid.jsonl")
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lrs", default="5e-5,2e-4", help="SFT learning rates to compare ('' for none)")
    ap.add_argument("--blocks", type=int, default=11, help="the SFT comparison uses the best cut of this many blocks")
    ap.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    args = ap.parse_args()
    folder = converted_folder(fetch("smollm2"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    valid = [json.loads(x) for x in (args.split / "valid.jsonl").read_text().splitlines()[: args.records]]
    train = [json.loads(x) for x in (args.split / "train.jsonl").read_text().splitlines()[: args.steps * 8]]
    valid_rows, train_rows = encode(tokenizer, valid), encode(tokenizer, train)
    teacher = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    print(f"teacher (30 blocks): validation CE {cross_entropy(teacher, valid_rows):.3f}")
    best, best_ce = None, float("inf")
    names = args.only.split(",") if args.only else list(CANDIDATES)
    for name in names:
        keep = CANDIDATES[name]
        model = cut_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), keep)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        ce = cross_entropy(model, valid_rows)
        print(f"{name} ({len(keep)} blocks, {params:.1f} M parameters): validation CE before training {ce:.3f}")
        if len(keep) == args.blocks and ce < best_ce:
            best, best_ce = name, ce
    if best is None or not args.lrs:
        return
    print(f"kept for the SFT comparison: {best}")
    for lr in (float(x) for x in args.lrs.split(",")):
        torch.manual_seed(0)
        model = cut_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), CANDIDATES[best])
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        order = list(range(len(train_rows)))
        random.Random(0).shuffle(order)
        start = time.perf_counter()
        for step in range(args.steps):
            model.train()
            ids, labels, att = batch([train_rows[i] for i in order[step * 8 : step * 8 + 8]])
            loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
        print(
            f"{best}, SFT lr {lr:g}, {args.steps} steps of 8: validation CE {cross_entropy(model, valid_rows):.3f} "
            f"({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
