"""A capture with the teacher served by vLLM (``--teacher-url``) against one with the teacher in the capturing
process: time, the capturing process's peak memory, and how far the two caches are apart.

The real pipeline's shape (``real_shape.py``): SmolLM2-135M-Instruct as the teacher, its 11-block cut as the
student (whose tokenizer and config the capture reads), Dolly records through the chat template, prompts of at
most 128 tokens and gold responses of at most 64. The two systems alternate (in-process, served, in-process,
...), each capture a fresh process with ``--threads`` threads. The server runs apart, started beforehand (in an
environment of its own: vLLM pins its own transformers), with the same number of threads, e.g.::

    OMP_NUM_THREADS=2 VLLM_CPU_KVCACHE_SPACE=2 VLLM_PY -m vllm.entrypoints.openai.api_server \\
        --model ~/.cache/minillm/gguf/b179c952... --served-model-name smollm2 --dtype float32 \\
        --max-model-len 512 --enforce-eager --max-logprobs 64 --port 8011
    python benchmarks/served_teacher.py --url http://localhost:8011/v1 --threads 2 --rounds 3 \\
        --data ../shared/data/dolly/databricks-dolly-15k.jsonl

Printed: each system's median capture time and response tokens a second, the per-pair ratio, each capturing
process's peak resident memory (the server's own memory is not in it), and, between the last two caches, the
share of positions whose top-1 id agrees, the share of top-k id sets that agree, and the largest differences of
a shared id's log-probability and of the tail.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import real_shape  # noqa: E402


def capture_child(spec: Path) -> None:
    harness.as_minillm_does()
    job = json.loads(spec.read_text())
    import torch

    torch.set_num_threads(job["threads"])
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.teacher_cache.from_recipe import capture_recipe

    start = time.perf_counter()
    result = capture_recipe(load_recipe(Path(job["recipe"]), []), Path(job["cache"]), k=job["k"], batch_size=8,
                            shard_records=1024, teacher_url=job["url"])  # fmt: skip
    harness.emit({"seconds": time.perf_counter() - start, "tokens": result.tokens,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})  # fmt: skip


def agreement(a: Path, b: Path) -> dict[str, float]:
    from minillm_distill.teacher_cache.store import TeacherCache

    left, right = TeacherCache(a), TeacherCache(b)
    top1 = sets = positions = 0
    worst_value = worst_tail = worst_mass = 0.0
    for record in range(len(left)):
        x, y = left.rows(record), right.rows(record)
        positions += x.ids.size(0)
        top1 += int((x.ids[:, 0] == y.ids[:, 0]).sum())
        for i in range(x.ids.size(0)):
            ids_x, ids_y = x.ids[i].tolist(), y.ids[i].tolist()
            sets += set(ids_x) == set(ids_y)
            shared = {t: v for t, v in zip(ids_y, y.logprobs[i].tolist(), strict=True)}
            for t, v in zip(ids_x, x.logprobs[i].tolist(), strict=True):
                if t in shared:
                    worst_value = max(worst_value, abs(v - shared[t]))
        worst_mass = max(worst_mass, float((x.tail.exp() - y.tail.exp()).abs().max()))
        heavy = x.tail.exp() >= 1e-3  # where the tail holds enough mass to matter; below, log(1 - mass) of
        if heavy.any():  # float32 log-probs summed is all rounding
            worst_tail = max(worst_tail, float((x.tail[heavy] - y.tail[heavy]).abs().max()))
    return {"positions": positions, "top1": top1 / positions, "sets": sets / positions,
            "value": worst_value, "tail": worst_tail, "mass": worst_mass}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the served teacher's /v1 address")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--data", type=Path, help="Dolly-format JSONL (databricks-dolly-15k.jsonl)")
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-served")
    parser.add_argument("--capture-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.capture_child is not None:
        capture_child(args.capture_child)
        return
    if args.url is None or args.data is None:
        parser.error("--url and --data are required")
    from minillm_distill.recipe.yaml_io import dump_yaml

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    teacher, student, data = real_shape.prepare(work, args.data, args.records)
    recipe = work / "kd.yaml"
    recipe.write_text(dump_yaml(real_shape.recipe("kd", teacher, student, data, 1)), encoding="utf-8")

    def system(name: str, url: str | None):
        def one(r: int) -> dict:
            cache = work / f"cache-{name}"
            shutil.rmtree(cache, ignore_errors=True)
            spec = work / f"{name}-{r}.json"
            spec.write_text(json.dumps({"recipe": str(recipe), "cache": str(cache), "k": args.k, "url": url,
                                        "threads": args.threads}))  # fmt: skip
            return harness.run_child([__file__, "--capture-child", spec], timeout=3600)

        return one

    results = harness.alternate({"in_process": system("in_process", None), "served": system("served", args.url)},
                                args.rounds)  # fmt: skip
    print(harness.machine_line())
    tokens = results["in_process"][0]["tokens"]
    print(f"{args.records} records, {tokens} response tokens, k = {args.k}, {args.threads} threads each")
    for name in ("in_process", "served"):
        seconds = [r["seconds"] for r in results[name]]
        rate = [r["tokens"] / r["seconds"] for r in results[name]]
        print(f"{name:>10} capture (s): {harness.summary(seconds)}; tokens/s {harness.summary(rate)}")
        print(f"{name:>10} peak memory of the capturing process (MiB): "
              f"{harness.summary([r['peak_mib'] for r in results[name]])}")  # fmt: skip
    in_process = [r["seconds"] for r in results["in_process"]]
    served = [r["seconds"] for r in results["served"]]
    print(f"in-process / served time per pair: {harness.ratio_summary(in_process, served)}")
    agree = agreement(work / "cache-in_process", work / "cache-served")
    print(f"agreement over {agree['positions']} positions: top-1 id {agree['top1']:.2%}, top-{args.k} id set "
          f"{agree['sets']:.2%}; largest difference of a shared id's log-prob {agree['value']:.2e}, of the tail's "
          f"mass {agree['mass']:.2e}, of its log where the mass is at least 1e-3 {agree['tail']:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
