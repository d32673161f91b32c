"""A KD step from a teacher cache against a KD step with the live teacher, at the real pipeline's shape:
SmolLM2-135M-Instruct as the teacher, its 11-block cut (first 5 + last 6 blocks) as the student, Dolly records
through the chat template, batch 8, prompts of at most 128 tokens and gold responses of at most 64, float32.

The cache (k = 64 by default) is captured once and timed; then the two systems run in turn (live, cached, live,
cached, ...), each round ``minillm distill`` in a fresh one-thread process, timed by the ``step_time_s`` minillm
records per optimizer step (the first ``--warmup`` steps untimed). Printed: each system's median step time, the
per-pair ratio live / cached with its spread, each process's peak resident memory (one process per round and
system), the capture's time, and how many training steps the capture pays for itself after.

Run (the teacher is fetched with pip on first use)::

    OMP_NUM_THREADS=1 python benchmarks/cache_vs_live.py --rounds 3 --steps 4 --warmup 2 \\
        --data ../shared/data/dolly/databricks-dolly-15k.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import real_shape  # noqa: E402


def recipe(teacher: str, student: Path, data: Path, steps: int, cache: Path | None) -> dict:
    body = real_shape.recipe("kd", teacher, student, data, steps)
    body["name"] = "bench-cache" if cache is not None else "bench-live"
    if cache is not None:
        body["teacher_cache"] = str(cache)
        body["teacher"] = None
    return body


def child(spec: Path) -> None:
    """One round of one system: ``minillm distill`` in this one-thread process, its step times and peak memory."""
    harness.as_minillm_does()
    harness.one_thread()
    job = json.loads(spec.read_text())
    from minillm_distill.cli.main import main

    try:
        main(["distill", job["recipe"], "--output-dir", job["run"]])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    rows = [json.loads(line) for line in (Path(job["run"]) / "metrics.jsonl").read_text().splitlines()]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    harness.emit({"step_times": [r["step_time_s"] for r in rows], "peak_mib": peak_mib})


def capture_child(spec: Path) -> None:
    harness.as_minillm_does()
    harness.one_thread()
    job = json.loads(spec.read_text())
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.teacher_cache.from_recipe import capture_recipe

    start = time.perf_counter()
    result = capture_recipe(load_recipe(Path(job["recipe"]), []), Path(job["cache"]), k=job["k"], batch_size=8,
                            shard_records=1024)  # fmt: skip
    harness.emit({"seconds": time.perf_counter() - start, "tokens": result.tokens,
                  "bytes_per_token": result.bytes_per_token})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each round")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--data", type=Path, help="Dolly-format JSONL (databricks-dolly-15k.jsonl)")
    parser.add_argument("--records", type=int, default=96)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-cache")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--capture-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.capture_child is not None:
        capture_child(args.capture_child)
        return
    if args.data is None:
        parser.error("--data is required (a Dolly-format JSONL file)")
    from minillm_distill.recipe.yaml_io import dump_yaml

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    teacher, student, data = real_shape.prepare(work, args.data, args.records)
    total = args.warmup + args.steps
    cache = work / f"cache-k{args.k}"
    live_recipe, cached_recipe = work / "live.yaml", work / "cached.yaml"
    live_recipe.write_text(dump_yaml(recipe(teacher, student, data, total, None)), encoding="utf-8")
    cached_recipe.write_text(dump_yaml(recipe(teacher, student, data, total, cache)), encoding="utf-8")

    shutil.rmtree(cache, ignore_errors=True)
    spec = work / "capture.json"
    spec.write_text(json.dumps({"recipe": str(live_recipe), "cache": str(cache), "k": args.k}))
    captured = harness.run_child([__file__, "--capture-child", spec], timeout=3600)
    print(f"capture: {captured['seconds']:.1f} s for {captured['tokens']} response tokens, "
          f"{captured['bytes_per_token']:.1f} bytes a token (k = {args.k})", flush=True)  # fmt: skip

    def system(name: str, path: Path):
        def one(r: int) -> dict:
            run_dir = work / f"run-{name}-{r}"
            shutil.rmtree(run_dir, ignore_errors=True)
            job = work / f"{name}-{r}.json"
            job.write_text(json.dumps({"recipe": str(path), "run": str(run_dir)}))
            out = harness.run_child([__file__, "--child", job], timeout=3600)
            times = out["step_times"][args.warmup :]
            return {"median_step_s": statistics.median(times), "peak_mib": out["peak_mib"]}

        return one

    results = harness.alternate({"live": system("live", live_recipe), "cached": system("cached", cached_recipe)},
                                args.rounds)  # fmt: skip
    print(harness.machine_line())
    live = [r["median_step_s"] for r in results["live"]]
    cached = [r["median_step_s"] for r in results["cached"]]
    print(f"live teacher step (s):  {harness.summary(live)}")
    print(f"cached teacher step (s): {harness.summary(cached)}")
    print(f"live / cached per pair:  {harness.ratio_summary(live, cached)}")
    print(f"peak memory, live (MiB):   {harness.summary([r['peak_mib'] for r in results['live']])}")
    print(f"peak memory, cached (MiB): {harness.summary([r['peak_mib'] for r in results['cached']])}")
    saved = statistics.median(live) - statistics.median(cached)
    if saved > 0:
        print(f"the capture ({captured['seconds']:.0f} s) pays for itself after {captured['seconds'] / saved:.0f} "
              "training steps at this shape")  # fmt: skip


if __name__ == "__main__":
    main()
