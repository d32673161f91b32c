"""``minillm demo``: the whole chain, offline, from a seed to a results table.

1. **data**: the synthetic world of the seed, its train / valid / test splits (prompts never shared),
   ``world.json`` (what rebuilds the exact answer distribution) and the task's tokenizer, under ``DIR/data``;
2. **teacher** and **student SFT** (in parallel): both from scratch on the training split;
3. **teacher check**: the teacher's validity on held-out validation prompts; below
   ``min_teacher_validity`` the demo stops with an error instead of comparing students of a teacher that
   has not learned the task;
4. **distillation**: KD, SeqKD, GKD and MiniLLM, each from the SFT student, the same number of steps;
5. **evaluation** of the teacher, the SFT student and every distilled student (:mod:`.evaluate`), as soon as
   each is trained;
6. **report**: a table (mean +- std over seeds), ``DIR/results.json`` and ``DIR/demo.png``.

Layout of ``DIR``: ``data/``, ``tokenizer/``, ``recipes/NAME.yaml`` (re-runnable with ``minillm distill``),
``runs/NAME/`` (``metrics.jsonl``, ``final/``), ``eval/NAME.json``, ``logs/NAME.log``, ``results.json``,
``demo.png`` and ``demo-settings.json`` (which marks the folder as the demo's, so a later demo may replace it).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from minillm_cli.demo import evaluate as demo_eval
from minillm_cli.demo.config import DISTILLED, LABELS, METHODS, RECIPES, DemoSettings
from minillm_cli.demo.jobs import Job, Runner
from minillm_cli.demo.recipes import build_recipes
from minillm_cli.errors import RuntimeFailure, UsageError

MARKER = "demo-settings.json"
OWNED = ("data", "tokenizer", "recipes", "runs", "eval", "logs", "results.json", "demo.png", MARKER)
"""What the demo writes in its folder (and removes when it replaces an earlier demo there)."""


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def evals(self) -> Path:
        return self.root / "eval"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def figure(self) -> Path:
        return self.root / "demo.png"

    def run(self, name: str) -> Path:
        return self.runs / name


def prepare_output_dir(root: Path) -> None:
    """Create ``root``; an earlier demo's outputs there are replaced, anything else there is refused."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"--output-dir {root} is a file", hint="choose a folder for the demo's outputs")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise UsageError(
                f"--output-dir {root} is not empty and holds no earlier demo",
                why="the demo writes data, runs and results there and would mix them with what is there",
                hint="choose a new or empty folder (an earlier demo's folder is replaced)",
            )
        for name in OWNED:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def make_data(settings: DemoSettings, paths: DemoPaths) -> dict[str, Any]:
    """Splits, world.json and tokenizer; returns facts for the report."""
    from minillm_plugins.synthetic import make_world, save_tokenizer, save_world, write_splits

    world = make_world(settings.seed)
    sizes = {"train": settings.train_prompts, "valid": settings.valid_prompts, "test": settings.test_prompts}
    write_splits(world, paths.data, sizes, seed=settings.seed)
    save_world(world, paths.data)
    tokenizer = save_tokenizer(world, paths.tokenizer)
    from minillm_plugins.synthetic.tokenizer import vocabulary

    vocab = len(vocabulary(world))
    return {
        "world_seed": world.seed,
        "world": dict(json.loads((paths.data / "world.json").read_text())["config"]),
        "splits": sizes,
        "vocabulary": vocab,
        "tokenizer": str(tokenizer),
        "teacher_parameters": settings.teacher.parameters(vocab),
        "student_parameters": settings.student.parameters(vocab),
    }


def _write_recipes(settings: DemoSettings, paths: DemoPaths) -> dict[str, Path]:
    from minillm_cli.recipe.loader import validate_recipe_dict
    from minillm_cli.recipe.yaml_io import dump_yaml

    out = {}
    paths.recipes.mkdir(parents=True, exist_ok=True)
    for name, recipe in build_recipes(settings, paths.data, paths.tokenizer, paths.runs).items():
        validate_recipe_dict(recipe, source=f"demo recipe {name}")  # a bug here should fail before any training
        path = paths.recipes / f"{name}.yaml"
        path.write_text(dump_yaml(recipe), encoding="utf-8")
        out[name] = path
    return out


def _train_job(name: str, description: str, recipe: Path, paths: DemoPaths, steps: int, deps=()) -> Job:
    run = paths.run(name)
    return Job(
        name=name,
        description=description,
        argv=[sys.executable, "-m", "minillm_cli", "distill", str(recipe), "--output-dir", str(run)],
        log=paths.logs / f"{name}.log",
        progress_file=run / "metrics.jsonl",
        total=steps,
        deps=tuple(deps),
    )


def _eval_job(name: str, settings: DemoSettings, paths: DemoPaths, threads: int) -> Job:
    is_teacher = name == "teacher"
    job = demo_eval.EvalJob(
        name=name,
        model=str(paths.run(name) / "final"),
        data=str(paths.data),
        out=str(paths.evals / f"{name}.json"),
        teacher=None if is_teacher else str(paths.run("teacher") / "final"),
        progress=str(paths.logs / f"eval-{name}.progress"),
        threads=threads,
        eval=_eval_dict(settings),
    )
    spec = demo_eval.write_job(job, paths.evals / f"{name}.job.json")
    return Job(
        name=f"eval-{name}",
        description=f"evaluate {LABELS[name]}",
        argv=[sys.executable, "-m", "minillm_cli.demo.evaluate", str(spec)],
        log=paths.logs / f"eval-{name}.log",
        progress_file=Path(job.progress or ""),
        total=demo_eval.units(settings.eval, not is_teacher),
        deps=(name,) if is_teacher else (name, "teacher"),
    )


def _eval_dict(settings: DemoSettings) -> dict[str, Any]:
    from dataclasses import asdict

    cfg = asdict(settings.eval)
    cfg["seeds"] = list(cfg["seeds"])
    return cfg


def summarise(values: list[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "seeds"}``: mean and sample std over the seeds; None where a seed has no value (not
    measured, or undefined such as the true NLL of valid responses when there are none): JSON has no NaN."""
    values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]
    finite = [v for v in values if v is not None]
    if not finite or len(finite) != len(values):
        return {"mean": None, "std": None, "seeds": values}
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std, "seeds": values}


def run_demo(settings: DemoSettings, output_dir: Path, *, threads: int, console: Console) -> dict[str, Any]:
    """Run every stage and return the results (also written to ``DIR/results.json``)."""
    import torch

    from minillm_cli.demo.figure import draw_figure
    from minillm_cli.demo.report import print_table

    start = time.perf_counter()
    torch.set_num_threads(1)  # this process only checks the teacher while the stages run beside it
    _quiet_transformers()
    paths = DemoPaths(output_dir.resolve())
    prepare_output_dir(paths.root)
    lanes = max(1, min(threads, 4))
    per_job_threads = max(1, threads // lanes)
    paths.root.joinpath(MARKER).write_text(
        json.dumps({"settings": settings.as_dict(), "threads": threads}, indent=2) + "\n", encoding="utf-8"
    )
    walls: dict[str, float] = {}

    t = time.perf_counter()
    with console.status("generating the task: world, splits, tokenizer"):
        facts = make_data(settings, paths)
        recipes = _write_recipes(settings, paths)
    walls["data"] = time.perf_counter() - t
    console.print(
        f"[green]\u2713[/] task: world seed {settings.seed}, {settings.train_prompts:,} train / "
        f"{settings.test_prompts:,} test prompts, vocabulary {facts['vocabulary']}; teacher "
        f"{facts['teacher_parameters']:,} parameters, student {facts['student_parameters']:,} "
        f"({facts['teacher_parameters'] / facts['student_parameters']:.0f}x smaller): {walls['data']:.1f} s"
    )

    gate: dict[str, float] = {}

    def check_teacher() -> str:
        t0 = time.perf_counter()
        validity = demo_eval.teacher_gate(paths.run("teacher") / "final", paths.data, settings.gate_prompts)
        gate.update(validity=validity, wall_s=time.perf_counter() - t0)
        if validity < settings.min_teacher_validity:
            raise RuntimeFailure(
                f"the teacher is valid on only {validity:.1%} of {settings.gate_prompts} held-out prompts "
                f"(the demo needs at least {settings.min_teacher_validity:.0%})",
                why="a teacher that has not learned the task makes every comparison of its students meaningless",
                hint=f"see its training curve in {paths.run('teacher') / 'metrics.jsonl'}; try another --seed, or "
                "the default settings if this was --quick",
            )
        return f"teacher validity {validity:.3f} on {settings.gate_prompts} validation prompts"

    s = settings
    teacher = _train_job("teacher", "train teacher (SFT)", recipes["teacher"], paths, s.teacher_sft.steps)
    teacher.on_done = check_teacher
    jobs = [teacher, _train_job("sft", "train student (SFT)", recipes["sft"], paths, s.student_sft.steps)]
    # longest first: they finish together on two lanes
    for name in ("minillm", "seqkd", "gkd", "kd"):
        description = f"distill {LABELS[name]} ({RECIPES[name]})"
        jobs.append(_train_job(name, description, recipes[name], paths, s.distill.steps, deps=("teacher", "sft")))
    jobs += [_eval_job(name, settings, paths, per_job_threads) for name in ("teacher", "sft", *DISTILLED[::-1])]
    console.print(
        f"running {len(jobs)} stages, {lanes} at a time ({per_job_threads} thread{'s' * (per_job_threads > 1)} "
        f"each); logs in {paths.logs}"
    )
    walls.update(Runner(console, lanes=lanes, threads=per_job_threads, cwd=paths.root).run(jobs))
    walls["teacher_check"] = gate.get("wall_s", 0.0)

    t = time.perf_counter()
    results: dict[str, Any] = {}
    for name in METHODS:
        per_seed = json.loads((paths.evals / f"{name}.json").read_text(encoding="utf-8"))["per_seed"]
        results[name] = {metric: summarise(values) for metric, values in per_seed.items()}
    truth = demo_eval.true_distribution(paths.data, settings.eval)
    results["true_distribution"] = {
        metric: summarise(values) for metric, values in truth.items() if any(v is not None for v in values)
    }
    results["settings"] = {
        **settings.as_dict(),
        **facts,
        "threads": threads,
        "parallel_stages": lanes,
        "teacher_check_validity": gate.get("validity"),
        "recipes": {name: str(path) for name, path in recipes.items()},
        "notes": NOTES,
    }
    walls["report"] = time.perf_counter() - t
    walls["total"] = time.perf_counter() - start
    results["wall_times"] = {name: round(value, 2) for name, value in walls.items()}
    paths.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    draw_figure(results, paths.runs, paths.figure)
    results["wall_times"]["total"] = round(time.perf_counter() - start, 2)
    paths.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results, Console())
    console.print(f"results: {paths.results}  figure: {paths.figure}  total {results['wall_times']['total']:.0f} s")
    return results


NOTES = {
    "validity": "share of responses the exact checker accepts (precision)",
    "coverage": "share of the test prompts' valid (mode, symbol, output) choices used at least once",
    "rouge_l": "Rouge-L F x100, maximum over `references` samples of the true distribution",
    "mean_length": "words before EOS (a valid response has 1 + 3..5)",
    "exposure_bias": "ExAccErr(l) in % against the teacher at l = eval.exposure_length (null: the teacher)",
    "ece": "next-token ECE under teacher forcing on one fresh true-distribution reference per prompt and seed",
    "true_distribution": "responses drawn from the task's true distribution, same prompts and seeds",
}


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - a dependency
        pass
