"""``minillm demo``: the whole chain, offline, from a seed to a results table.

1. **data**: the synthetic world of the seed, its train / valid / test splits (prompts never shared),
   ``world.json`` (what rebuilds the exact answer distribution), ``corpus.txt`` (the training split as plain
   text, the corpus of MiniLLM's pretraining term) and the task's tokenizer, under ``DIR/data``;
2. **teacher** and the **SFT students** (in parallel): all from scratch on the training split; one teacher,
   and one SFT student per training run (``train_runs``, each with its own seeds);
3. **teacher check**: the teacher's validity on held-out validation prompts; below
   ``min_teacher_validity`` the demo stops with an error instead of comparing students of a teacher that
   has not learned the task;
4. **distillation**: KD, SeqKD, GKD and MiniLLM (``methods``), each from its run's SFT student, the same
   number of steps;
5. **evaluation** of the teacher (every sampling seed) and of every student of every run (that run's share of
   the sampling seeds, :meth:`DemoSettings.run_seeds`);
6. **report**: a table (mean +- std over seeds: for a student, over its runs), ``DIR/results.json`` and
   ``DIR/demo.png``.

Layout of ``DIR``, with stage ids ``teacher`` and ``runN/NAME`` (:func:`stage`): ``data/``, ``tokenizer/``,
``recipes/ID.yaml`` (re-runnable with ``minillm distill``), ``runs/ID/`` (``metrics.jsonl``, ``final/``),
``eval/ID.json``, ``logs/ID.log``, ``results.json``, ``demo.png`` and ``demo-settings.json`` (which marks the
folder as the demo's, so a later demo may replace it).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from minillm_demo import calibration as demo_calibration
from minillm_demo import evaluate as demo_eval
from minillm_demo.config import DISTILLED, LABELS, METHODS, RECIPES, DemoSettings
from minillm_demo.recipes import build_recipes, stage, write_pretraining_corpus
from minillm_distill.api import Job, Runner, RuntimeFailure, UsageError, command_line, distill_job, provenance_record

MARKER = "demo-settings.json"
OWNED = (
    "data", "tokenizer", "recipes", "runs", "eval", "logs", "results.json", "results.md", "demo.png",
    "lengths.png", "calibration.png", MARKER,
)  # fmt: skip
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
    def results_page(self) -> Path:
        return self.root / "results.md"

    @property
    def figure(self) -> Path:
        return self.root / "demo.png"

    @property
    def calibration_figure(self) -> Path:
        return self.root / "calibration.png"

    @property
    def lengths_figure(self) -> Path:
        return self.root / "lengths.png"

    def run(self, stage_id: str) -> Path:
        return self.runs / stage_id

    def eval_file(self, stage_id: str) -> Path:
        return self.evals / f"{stage_id}.json"


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
    from minillm_demo.synthetic import make_world, save_tokenizer, save_world, write_splits
    from minillm_demo.synthetic.task import TaskConfig

    world = make_world(settings.seed, TaskConfig(**settings.world))  # checked by DemoSettings
    sizes = {"train": settings.train_prompts, "valid": settings.valid_prompts, "test": settings.test_prompts}
    n_choice = demo_calibration.n_choice_records(settings)
    write_splits(world, paths.data, {**sizes, "train": sizes["train"] - n_choice}, seed=settings.seed)
    extra_words = demo_calibration.mix_choice_prompts(
        world, paths.data, n_choice, seed=settings.seed, question=settings.choice_question
    )
    save_world(world, paths.data)
    tokenizer = save_tokenizer(world, paths.tokenizer, extra_words)
    write_pretraining_corpus(paths.data)  # MiniLLM's pretraining term reads it when minillm_lm_coef > 0
    from minillm_demo.synthetic.tokenizer import vocabulary

    vocab = len(vocabulary(world, extra_words))
    return {
        "choice_train_records": n_choice,
        "world_seed": world.seed,
        "world": dict(json.loads((paths.data / "world.json").read_text())["config"]),
        "splits": sizes,
        "vocabulary": vocab,
        "tokenizer": str(tokenizer),
        "teacher_parameters": settings.teacher.parameters(vocab, settings.positions()),
        "student_parameters": settings.student.parameters(vocab, settings.positions()),
        "max_positions": settings.positions(),
        "response_budget": settings.response_budget(),
    }


def _write_recipes(settings: DemoSettings, paths: DemoPaths) -> dict[str, Path]:
    from minillm_distill.api import dump_yaml, validate_recipe_dict

    out = {}
    paths.recipes.mkdir(parents=True, exist_ok=True)
    for name, recipe in build_recipes(settings, paths.data, paths.tokenizer, paths.runs).items():
        validate_recipe_dict(recipe, source=f"demo recipe {name}")  # a bug here should fail before any training
        path = paths.recipes / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(recipe), encoding="utf-8")
        out[name] = path
    return out


def _train_job(name: str, description: str, recipe: Path, paths: DemoPaths, steps: int, deps=()) -> Job:
    return distill_job(
        name, description, recipe, paths.run(name), log=paths.logs / f"{name}.log", steps=steps, deps=deps
    )


def _eval_job(name: str, run: int, settings: DemoSettings, paths: DemoPaths, threads: int) -> Job:
    """Evaluation of the teacher (every sampling seed) or of run ``run``'s ``name`` (that run's seeds)."""
    is_teacher = name == "teacher"
    sid = stage(name, run)
    full = settings.eval_config()
    cfg = replace(full, seeds=full.seeds if is_teacher else settings.run_seeds(run))
    job = demo_eval.EvalJob(
        name=sid,
        model=str(paths.run(sid) / "final"),
        data=str(paths.data),
        out=str(paths.eval_file(sid)),
        teacher=None if is_teacher else str(paths.run("teacher") / "final"),
        progress=str(paths.logs / f"{sid}.eval-progress"),
        threads=threads,
        eval={**asdict(cfg), "seeds": list(cfg.seeds)},
    )
    spec = demo_eval.write_job(job, paths.evals / f"{sid}.job.json")
    return Job(
        name=f"eval:{sid}",
        description=f"evaluate {_label(name, run, settings)}",
        argv=[sys.executable, "-m", "minillm_distill", "demo", "evaluate", str(spec)],
        log=paths.logs / f"{sid}.eval.log",
        progress_file=Path(job.progress or ""),
        total=demo_eval.units(cfg, not is_teacher),
        deps=(sid,) if is_teacher else (sid, "teacher"),
    )


def _label(name: str, run: int, settings: DemoSettings) -> str:
    if name == "teacher" or settings.train_runs == 1:
        return LABELS[name]
    return f"{LABELS[name]}, run {run + 1}/{settings.train_runs}"


def collect(settings: DemoSettings, paths: DemoPaths) -> dict[str, dict[str, Any]]:
    """``{model: {metric: summarise(values)}}`` from the evaluations: the teacher's values are one per
    sampling seed; a student's are its training runs' values in run order (each run's own sampling seeds), so
    their spread is over training and sampling together."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("teacher", "sft", *[m for m in DISTILLED if m in settings.methods]):
        runs = [0] if name == "teacher" else range(settings.train_runs)
        per_seed = collect_eval_files([paths.eval_file(stage(name, run)) for run in runs])
        out[name] = {metric: summarise(values) for metric, values in per_seed.items()}
    return out


def collect_label_bins(settings: DemoSettings, paths: DemoPaths, key: str = "label_bins") -> dict[str, dict[str, Any]]:
    """``{model: {"bins": ...}}``: every model's reliability bins under ``key`` of its evaluation files
    (``label_bins``: label words; ``pair_bins``: pair choices), pooled over its seeds (and, for a student, its
    runs) (:func:`minillm_demo.calibration.pool_bins`)."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("teacher", "sft", *[m for m in DISTILLED if m in settings.methods]):
        runs = [0] if name == "teacher" else range(settings.train_runs)
        per_seed = []
        for run in runs:
            per_seed += json.loads(paths.eval_file(stage(name, run)).read_text(encoding="utf-8")).get(key, [])
        kept = [bins for bins in per_seed if bins]
        out[name] = {"bins": demo_calibration.pool_bins(kept), "seeds": len(kept)}
    return out


def collect_eval_files(files: list[Path]) -> dict[str, list[float | None]]:
    """metric -> the per-seed values of ``files`` (evaluation results), concatenated in order."""
    per_seed: dict[str, list[float | None]] = {}
    for path in files:
        for metric, seeds in json.loads(path.read_text(encoding="utf-8"))["per_seed"].items():
            per_seed.setdefault(metric, []).extend(seeds)
    return per_seed


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

    from minillm_demo.figure import draw_figure
    from minillm_demo.lengths import length_report
    from minillm_demo.lengths_figure import draw_lengths_figure
    from minillm_demo.report import print_lengths_table, print_table, results_markdown

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
        validity = demo_eval.teacher_gate(
            paths.run("teacher") / "final",
            paths.data,
            settings.gate_prompts,
            max_new_tokens=settings.response_budget(),
        )
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
    jobs = [teacher]
    # the longest first: the teacher on one lane while the SFT students train on the other, then every run's
    # distillations longest first, so the lanes finish together; evaluations start as soon as a lane is free
    for run in range(s.train_runs):
        sid = stage("sft", run)
        jobs.append(_train_job(sid, f"train {_label('sft', run, s)}", recipes[sid], paths, s.student_sft.steps))
    for run in range(s.train_runs):
        for name in [m for m in ("minillm", "seqkd", "gkd", "kd") if m in s.methods]:
            sid = stage(name, run)
            description = f"distill {_label(name, run, s)} ({RECIPES[name]})"
            jobs.append(
                _train_job(sid, description, recipes[sid], paths, s.distill.steps, deps=("teacher", stage("sft", run)))
            )
    jobs.append(_eval_job("teacher", 0, settings, paths, per_job_threads))
    for run in range(s.train_runs):
        for name in ("sft", *[m for m in DISTILLED if m in s.methods]):
            jobs.append(_eval_job(name, run, settings, paths, per_job_threads))
    console.print(
        f"running {len(jobs)} stages ({s.train_runs} training run{'s' * (s.train_runs > 1)} of every student), "
        f"{lanes} at a time ({per_job_threads} thread{'s' * (per_job_threads > 1)} each); logs in {paths.logs}"
    )
    walls.update(Runner(console, lanes=lanes, threads=per_job_threads, cwd=paths.root).run(jobs))
    walls["teacher_check"] = gate.get("wall_s", 0.0)

    t = time.perf_counter()
    results: dict[str, Any] = collect(settings, paths)
    if settings.choice_share > 0:
        results["label_calibration"] = collect_label_bins(settings, paths)
    results["pair_calibration"] = collect_label_bins(settings, paths, "pair_bins")
    truth = demo_eval.true_distribution(paths.data, settings.eval_config())
    results["true_distribution"] = {
        metric: summarise(values) for metric, values in truth.items() if any(v is not None for v in values)
    }
    results["settings"] = {
        **settings.as_dict(),
        **facts,
        "threads": threads,
        "parallel_stages": lanes,
        "teacher_check_validity": gate.get("validity"),
        "student_runs": {
            "runs": s.train_runs,
            "sampling_seeds": {f"run{run + 1}": list(s.run_seeds(run)) for run in range(s.train_runs)},
        },
        "recipes": {name: str(path) for name, path in recipes.items()},
        "notes": NOTES,
    }
    results["lengths"] = length_report(results, METHODS)
    results["provenance"] = provenance_record(command_line())
    walls["report"] = time.perf_counter() - t
    walls["total"] = time.perf_counter() - start
    results["wall_times"] = {name: round(value, 2) for name, value in walls.items()}
    paths.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    draw_figure(results, paths.runs, paths.figure)
    draw_lengths_figure(results, paths.lengths_figure)
    if demo_calibration.has_calibration_metrics(results):
        demo_calibration.draw_calibration_figure(results, paths.calibration_figure)
    results["wall_times"]["total"] = round(time.perf_counter() - start, 2)
    paths.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    paths.results_page.write_text(results_markdown(results), encoding="utf-8")
    print_table(results, Console())
    print_lengths_table(results, Console())
    if demo_calibration.has_calibration_metrics(results):
        Console().print(demo_calibration.calibration_table(results))
    console.print(
        f"results: {paths.results}  figures: {paths.figure}, {paths.lengths_figure.name}"
        f"{', ' + paths.calibration_figure.name if paths.calibration_figure.is_file() else ''}  "
        f"total {results['wall_times']['total']:.0f} s"
    )
    return results


NOTES = {
    "seeds": "teacher: one value per sampling seed (one training run); students: one value per (training run, "
    "sampling seed), runs in order, so their std covers training and sampling together",
    "validity": "share of responses the exact checker accepts (precision)",
    "coverage": "share of the test prompts' valid (mode, symbol, output) choices used at least once",
    "rouge_l": "Rouge-L F x100, maximum over `references` samples of the true distribution",
    "mean_length": "words before EOS (a valid response has 1 + arity x items: 1 + 3..5 in the default world)",
    "X@B": "share@B, validity@B, rouge_l@B: by bucket B of the first reference's length in output symbols; "
    "exaccerr@L: ExAccErr in % at generation length L (over the responses at least L tokens long)",
    "lengths": "per bucket / length: every model's mean and std, and MiniLLM minus each other student (diff, "
    "se, resolved = |diff| > 2 se, runs_needed = runs per method for |diff| = 2 se at the measured spread)",
    "exposure_bias": "ExAccErr(l) in % against the teacher at l = eval.exposure_length (null: the teacher)",
    "ece": "next-token ECE under teacher forcing on one fresh true-distribution reference per prompt and seed",
    "label_accuracy": "share of eval.choice_prompts held-out yes/no choice prompts per seed (balanced) whose more "
    "probable label word is the exact label (only when choice_share > 0)",
    "label_ece": "ECE of the label words' probabilities normalised over yes/no (confidence: the predicted label's), "
    "10 equal-width bins; label_calibration: its reliability bins pooled over seeds and runs",
    "pair_accuracy": "share of pair choices (one per calibration prompt and seed: a true response's next output "
    "against another mode's output for the same symbol) where the valid output is the more probable next token",
    "pair_ece": "ECE of the two words' probabilities normalised over the pair (confidence: the preferred word's), "
    "10 equal-width bins; pair_calibration: its reliability bins pooled over seeds and runs",
    "true_distribution": "responses drawn from the task's true distribution, same prompts and seeds",
}


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - a dependency
        pass
