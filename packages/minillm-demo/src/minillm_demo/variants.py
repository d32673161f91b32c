"""Variants of a finished demo's stages, trained and evaluated exactly like the demo's own, side by side.

    python -m minillm_demo.variants DIR NAME=STAGE[:KEY=VALUE,...] ...

``STAGE`` is a distillation of the demo (``kd``, ``seqkd``, ``gkd``, ``minillm``); ``KEY=VALUE`` are recipe
overrides as ``minillm distill --set`` takes them (``train.total_steps=3000``, ``sampler.alpha=0``,
``divergence.single_step_coef=0``; separated by commas, so a value cannot hold one). For every training run
of the demo in ``DIR`` the stage's recipe (``DIR/recipes/runN/STAGE.yaml``: same teacher, same SFT student,
same seed) is trained with the overrides into ``DIR/variants/NAME/runN`` and evaluated with that run's sampling
seeds, two stages at a time as the demo runs them. Prints the variants beside the demo's rows and writes
``DIR/variants/results.json`` (the shape of the demo's ``results.json``). Run it again with more variants:
finished ones are kept (a variant whose overrides changed is retrained).

Example (the budget-matched comparison of the README)::

    python -m minillm_demo.variants runs/demo kd-3k=kd:train.total_steps=3000 \\
        minillm-3k=minillm:train.total_steps=3000
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minillm_distill.api import UsageError

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class Variant:
    name: str
    stage: str
    overrides: tuple[str, ...]


def parse_variant(text: str) -> Variant:
    from minillm_demo.config import DISTILLED

    name, sep, rest = text.partition("=")
    stage, _, sets = rest.partition(":")
    if not sep or not name or stage not in DISTILLED or "/" in name:
        raise UsageError(
            f"bad variant {text!r}",
            hint=f"write NAME=STAGE[:KEY=VALUE,...] with STAGE one of {', '.join(DISTILLED)}, "
            "e.g. kd-3k=kd:train.total_steps=3000",
        )
    return Variant(name, stage, tuple(s for s in sets.split(",") if s))


def _settings(root: Path) -> dict[str, Any]:
    """The settings of the finished demo in ``root``, as its results.json records them."""
    results = root / "results.json"
    if not (root / "demo-settings.json").is_file() or not results.is_file():
        raise UsageError(f"{root} holds no finished demo", hint="run `minillm demo --output-dir DIR` first")
    return json.loads(results.read_text(encoding="utf-8"))["settings"]


def baseline_results(root: Path) -> dict[str, Any]:
    """The demo's own rows (its ``results.json``), to show beside the variants."""
    return json.loads((root / "results.json").read_text(encoding="utf-8"))


def run_variants(root: Path, variants: Sequence[Variant], *, console: Console, threads: int = 2) -> dict[str, Any]:
    """Train and evaluate the variants (progress on ``console``); write and return their results."""
    from minillm_demo import evaluate as demo_eval
    from minillm_demo.pipeline import collect_eval_files, summarise
    from minillm_demo.recipes import stage
    from minillm_distill.api import Job, Runner, distill_job

    settings = _settings(root)
    run_seeds = settings["student_runs"]["sampling_seeds"]  # what the demo's own students were evaluated with
    runs = int(settings["train_runs"])
    lanes = max(1, min(threads, 4))
    jobs: list[Job] = []
    for v in variants:
        for run in range(runs):
            sid = stage(v.stage, run)
            recipe = root / "recipes" / f"{sid}.yaml"
            if not recipe.is_file():
                raise UsageError(f"the demo in {root} has no stage {sid}", hint="see its recipes/ folder")
            out = root / "variants" / v.name / f"run{run + 1}"
            stamp = out / "variant.json"
            spec = {"recipe": str(recipe), "overrides": list(v.overrides)}
            done = stamp.is_file() and json.loads(stamp.read_text()) == spec and (out / "final").is_dir()
            evaluation = out / "eval.json"
            if not done:
                if out.exists():
                    shutil.rmtree(out)
                train = distill_job(
                    f"{v.name}/run{run + 1}",
                    f"{v.name}, run {run + 1}/{runs}",
                    recipe,
                    out,
                    log=root / "variants" / "logs" / f"{v.name}-run{run + 1}.log",
                    steps=_steps(recipe, v.overrides),
                    overrides=v.overrides,
                )
                train.on_done = _stamper(stamp, spec)
                jobs.append(train)
            if not done or not evaluation.is_file():
                cfg = {**settings["eval"], "seeds": run_seeds[f"run{run + 1}"]}
                job = demo_eval.EvalJob(
                    name=f"{v.name}/run{run + 1}",
                    model=str(out / "final"),
                    data=str(root / "data"),
                    out=str(evaluation),
                    teacher=str(root / "runs" / "teacher" / "final"),
                    threads=max(1, threads // lanes),
                    eval=cfg,
                )
                path = demo_eval.write_job(job, root / "variants" / "logs" / f"{v.name}-run{run + 1}.job.json")
                jobs.append(
                    Job(
                        name=f"eval:{v.name}/run{run + 1}",
                        description=f"evaluate {v.name}, run {run + 1}/{runs}",
                        argv=[sys.executable, "-m", "minillm_distill", "demo", "evaluate", str(path)],
                        log=root / "variants" / "logs" / f"{v.name}-run{run + 1}.eval.log",
                        deps=(f"{v.name}/run{run + 1}",) if not done else (),
                    )
                )
    if jobs:
        Runner(console, lanes=lanes, threads=max(1, threads // lanes), cwd=root).run(jobs)
    results: dict[str, Any] = {}
    for v in variants:
        files = [root / "variants" / v.name / f"run{run + 1}" / "eval.json" for run in range(runs)]
        results[v.name] = {
            **{metric: summarise(values) for metric, values in collect_eval_files(files).items()},
            "variant": {"stage": v.stage, "overrides": list(v.overrides)},
        }
    out = root / "variants" / "results.json"
    earlier = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    out.write_text(json.dumps({**earlier, **results}, indent=2) + "\n", encoding="utf-8")
    return results


def _steps(recipe: Path, overrides: Sequence[str]) -> int:
    from minillm_distill.api import load_yaml

    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() == "train.total_steps":
            return int(value)
    return int(load_yaml(recipe.read_text(encoding="utf-8"))["train"]["total_steps"])


def _stamper(stamp: Path, spec: dict[str, Any]):
    def stamp_it() -> None:
        stamp.write_text(json.dumps(spec) + "\n", encoding="utf-8")

    return stamp_it
