"""Optimizer-step time at the offline demo's sizes (synthetic task, vocabulary about 100), against another
checkout of minillm, alternating.

At a vocabulary of about 100 the output layer is a tiny matmul; this measures what the rest of a step costs
(scoring, the loss walk, backward, the optimizer, the loop), where a regression shows up as a slower
``minillm demo``. Each round runs each checkout in a fresh one-thread process that builds the demo's task
(``quick`` settings, the demo's own code from that checkout), then runs, through ``run_distill`` (the code
``minillm distill`` runs), the demo's stages for a few steps each: ``teacher`` (dataset x sft, teacher
3 x 128, batch 64), ``sft`` (the student 2 x 24 from scratch), ``kd`` (dataset x fkl from those two) and
``gkd`` (mixed x jsd). A stage's time is the median of the ``step_time_s`` minillm records after ``--warmup``
steps.

Run (from the repository root)::

    git worktree add /tmp/old-main 533b980
    git worktree add --detach /tmp/main-now main   # e.g. the commit before a change
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_step.py --rounds 4 \\
        --other-checkout /tmp/old-main --other-checkout /tmp/main-now
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

STAGES = ("teacher", "sft", "kd", "gkd")


def child(warmup: int, steps: int) -> dict:
    harness.as_minillm_does()
    harness.one_thread()
    import importlib

    import minillm_distill

    # the demo's code of the checkout measured: inside minillm_distill before the demo became its own package
    inside = (Path(minillm_distill.__file__).parent / "demo" / "pipeline.py").is_file()
    demo = "minillm_distill.demo" if inside else "minillm_demo"
    quick_settings = importlib.import_module(f"{demo}.config").quick_settings
    DemoPaths, make_data = (getattr(importlib.import_module(f"{demo}.pipeline"), n) for n in ("DemoPaths", "make_data"))
    build_recipes, stage = (getattr(importlib.import_module(f"{demo}.recipes"), n) for n in ("build_recipes", "stage"))
    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.recipe.yaml_io import dump_yaml
    from minillm_distill.train.loop import RunOptions, run_distill

    settings = dataclasses.replace(quick_settings(), train_prompts=2000, train_runs=1)
    out: dict = {"minillm_distill": str(Path(minillm_distill.__file__).parent)}
    with tempfile.TemporaryDirectory() as tmp:
        paths = DemoPaths(Path(tmp))
        make_data(settings, paths)
        recipes = build_recipes(settings, paths.data, paths.tokenizer, paths.runs)
        for name in STAGES:
            sid = stage(name, 0)
            recipe = copy.deepcopy(recipes[sid])
            recipe["train"].update(total_steps=warmup + steps, save_every=warmup + steps, warmup_steps=1)
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(dump_yaml(recipe), encoding="utf-8")
            run_distill(load_recipe(path), RunOptions(output_dir=paths.run(sid)))
            rows = [json.loads(line) for line in (paths.run(sid) / "metrics.jsonl").read_text().splitlines()]
            out[name] = statistics.median(r["step_time_s"] for r in rows[warmup:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each stage")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per stage")
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument(
        "--other-checkout",
        type=Path,
        action="append",
        default=[],
        help="another checkout (e.g. 533b980) to alternate with; may be repeated",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.emit(child(args.warmup, args.steps))
        return
    harness.one_thread()
    common = [str(Path(__file__).resolve()), "--child", "--warmup", args.warmup, "--steps", args.steps]
    checkouts = {"current": args.checkout}
    for i, other in enumerate(args.other_checkout):
        checkouts[f"other{i + 1}"] = other
    systems = {
        name: (lambda r, p=harness.checkout_pythonpath(path): harness.run_child(common, pythonpath=p))
        for name, path in checkouts.items()
    }
    print(f"demo-sized steps (quick settings), {args.steps} timed steps per stage after {args.warmup} warmup")
    print("machine:", harness.machine_line())
    res = harness.alternate(systems, args.rounds)
    for name, path in checkouts.items():
        print(f"{name} ({path}):")
        for s in STAGES:
            print(f"  {s:8s} s/step {harness.summary([r[s] for r in res[name]])}")
    for name in list(checkouts)[1:]:
        for s in STAGES:
            ratio = harness.ratio_summary([r[s] for r in res["current"]], [r[s] for r in res[name]])
            print(f"  {s:8s} current/{name} per pair: {ratio}")


if __name__ == "__main__":
    main()
