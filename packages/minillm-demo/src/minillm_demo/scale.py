"""The demo's comparison at other student sizes, under the one teacher of a finished demo.

    python -m minillm_demo.scale DIR SIZE ... [--methods kd,gkd,minillm] [--set KEY=VALUE ...]

``SIZE`` is ``LAYERSxHIDDENxHEADS`` (``2x16x2``: about 9k parameters at the demo's vocabulary; the demo's own
student is ``2x24x2``, about 18k; ``2x48x4`` about 63k). For every size the whole student chain of the demo in
``DIR`` runs again with only the student's size changed: ``train_runs`` SFT students from scratch (each run's
own seeds), every method of ``--methods`` distilled from its run's SFT student under the demo's teacher
(``DIR/runs/teacher/final``), the same steps, batch and learning rates, and the same evaluation (each run with
its own sampling seeds), two stages at a time as the demo runs them. ``--set`` takes ``minillm demo --set``
keys (e.g. ``distill.steps=200`` for a smoke test); they are recorded, and a size whose settings changed is
retrained.

Writes ``DIR/scale/SIZE/`` (recipes, runs, evaluations, logs), ``DIR/scale/results.json`` (every size, the
demo's own among them, with ``{mean, std, seeds}`` per metric and model, as the demo's ``results.json``), a
``scale`` entry in ``DIR/results.json`` and ``DIR/scale.png`` (validity and Rouge-L against student parameters).

Example (the README's scale comparison)::

    python -m minillm_demo.scale runs/demo 2x16x2 2x48x4
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minillm_distill.api import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from minillm_demo.config import DemoSettings, ModelSize

SCALE_METHODS = ("kd", "gkd", "minillm")
"""What the issue's claim compares; ``--methods`` may add ``seqkd``."""

_SIZE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_size(text: str) -> ModelSize:
    from minillm_demo.config import ModelSize

    match = _SIZE.match(text.strip())
    if match is None:
        raise UsageError(f"bad student size {text!r}", hint="write LAYERSxHIDDENxHEADS, e.g. 2x16x2 or 2x48x4")
    layers, hidden, heads = (int(g) for g in match.groups())
    if min(layers, hidden, heads) < 1 or hidden % heads:
        raise UsageError(
            f"bad student size {text!r}: layers, hidden and heads must be positive and heads must divide hidden",
            hint="for example 2x16x2 (hidden 16 over 2 heads)",
        )
    return ModelSize(layers, hidden, heads)


def size_name(size: ModelSize) -> str:
    return f"{size.layers}x{size.hidden}x{size.heads}"


def settings_from_dict(data: dict[str, Any], cls: type | None = None) -> Any:
    """A :class:`DemoSettings` (or any of its dataclass parts) back from its ``as_dict()`` form."""
    from minillm_demo.config import DemoSettings

    cls = cls or DemoSettings
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue  # a setting newer than the demo that wrote ``data``: its default
        value, hint = data[f.name], hints[f.name]
        if is_dataclass(hint) and isinstance(value, dict):
            value = settings_from_dict(value, hint)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def demo_settings(root: Path) -> DemoSettings:
    """The settings of the finished demo in ``root``."""
    marker = root / "demo-settings.json"
    if not marker.is_file() or not (root / "results.json").is_file() or not (root / "runs/teacher/final").is_dir():
        raise UsageError(f"{root} holds no finished demo", hint="run `minillm demo --output-dir DIR` first")
    return settings_from_dict(json.loads(marker.read_text(encoding="utf-8"))["settings"])


@dataclass(frozen=True)
class ScalePlan:
    name: str
    settings: DemoSettings
    folder: Path
    spec: dict[str, Any]
    """what the size's results depend on: a folder whose stamp differs is retrained"""


def plan(root: Path, sizes: Sequence[ModelSize], methods: Sequence[str], overrides: Sequence[str]) -> list[ScalePlan]:
    from minillm_demo.config import DISTILLED
    from minillm_demo.overrides import apply_overrides

    unknown = [m for m in methods if m not in DISTILLED]
    if unknown or not methods:
        raise UsageError(
            f"--methods {','.join(methods)}: unknown {unknown}", hint=f"choose among {','.join(DISTILLED)}"
        )
    base = apply_overrides(demo_settings(root), overrides)
    base = replace(base, methods=tuple(m for m in DISTILLED if m in methods))
    out = []
    for size in sizes:
        settings = replace(base, student=size)
        spec = {"student": size_name(size), "methods": list(settings.methods), "overrides": list(overrides)}
        out.append(ScalePlan(size_name(size), settings, root / "scale" / size_name(size), spec))
    return out


def _recipes(p: ScalePlan, root: Path) -> dict[str, Path]:
    """The size's SFT and distillation recipes, with the demo's teacher."""
    from minillm_demo.recipes import build_recipes
    from minillm_distill.api import dump_yaml, validate_recipe_dict

    teacher = str(root / "runs" / "teacher" / "final")
    out = {}
    for sid, recipe in build_recipes(p.settings, root / "data", root / "tokenizer", p.folder / "runs").items():
        if sid == "teacher":
            continue
        if "teacher" in recipe:
            recipe["teacher"] = {**recipe["teacher"], "path": teacher}
        recipe["name"] = f"{recipe['name']}-{p.name}"
        validate_recipe_dict(recipe, source=f"scale recipe {p.name}/{sid}")
        path = p.folder / "recipes" / f"{sid}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(recipe), encoding="utf-8")
        out[sid] = path
    return out


def _jobs(p: ScalePlan, root: Path, recipes: dict[str, Path], threads: int) -> dict[str, list[Any]]:
    """The size's jobs by kind (``sft``, ``distill``, ``eval``): the caller orders them over every size."""
    from minillm_demo import evaluate as demo_eval
    from minillm_demo.recipes import stage
    from minillm_distill.api import Job, distill_job

    s = p.settings
    out: dict[str, list[Any]] = {"sft": [], "distill": [], "eval": []}
    logs = p.folder / "logs"
    order = {name: i for i, name in enumerate(("sft", "minillm", "seqkd", "gkd", "kd"))}  # longest first
    for sid in sorted(recipes, key=lambda k: (order[k.split("/")[1]], k)):
        run_dir, name = sid.split("/")
        run = int(run_dir.removeprefix("run")) - 1
        trained = p.folder / "runs" / sid
        log = logs / sid.replace("/", "-")
        out["sft" if name == "sft" else "distill"].append(
            distill_job(
                f"{p.name}/{sid}",
                f"{p.name}: train {name}, run {run + 1}/{s.train_runs}",
                recipes[sid],
                trained,
                log=log.with_suffix(".log"),
                steps=s.student_sft.steps if name == "sft" else s.distill.steps,
                deps=() if name == "sft" else (f"{p.name}/{stage('sft', run)}",),
            )
        )
        cfg = replace(s.eval_config(), seeds=s.run_seeds(run))
        job = demo_eval.EvalJob(
            name=f"{p.name}/{sid}",
            model=str(trained / "final"),
            data=str(root / "data"),
            out=str(p.folder / "eval" / f"{sid}.json"),
            teacher=str(root / "runs" / "teacher" / "final"),
            threads=threads,
            eval={**asdict(cfg), "seeds": list(cfg.seeds)},
        )
        spec = demo_eval.write_job(job, p.folder / "eval" / f"{sid}.job.json")
        out["eval"].append(
            Job(
                name=f"eval:{p.name}/{sid}",
                description=f"{p.name}: evaluate {name}, run {run + 1}/{s.train_runs}",
                argv=[sys.executable, "-m", "minillm_distill", "demo", "evaluate", str(spec)],
                log=Path(f"{log}.eval.log"),
                deps=(f"{p.name}/{sid}",),
            )
        )
    return out


def _models(settings: DemoSettings) -> tuple[str, ...]:
    return ("sft", *settings.methods)


def _collect(p: ScalePlan) -> dict[str, Any]:
    from minillm_demo.pipeline import collect_eval_files, summarise
    from minillm_demo.recipes import stage

    models = {}
    for name in _models(p.settings):
        files = [p.folder / "eval" / f"{stage(name, run)}.json" for run in range(p.settings.train_runs)]
        models[name] = {metric: summarise(values) for metric, values in collect_eval_files(files).items()}
    return models


def run_scale(
    root: Path,
    sizes: Sequence[ModelSize],
    *,
    methods: Sequence[str] = SCALE_METHODS,
    overrides: Sequence[str] = (),
    console: Console,
    threads: int = 2,
) -> dict[str, Any]:
    """Train and evaluate the student chain at every size; write and return ``DIR/scale/results.json``."""
    import time

    from minillm_demo.scale_figure import draw_scale_figure
    from minillm_distill.api import Runner

    start = time.perf_counter()
    plans = plan(root, sizes, methods, overrides)
    lanes = max(1, min(threads, 4))
    by_kind: dict[str, list[Any]] = {"sft": [], "distill": [], "eval": []}
    for p in plans:
        stamp = p.folder / "scale.json"
        if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == p.spec and _finished(p):
            continue
        if p.folder.exists():
            shutil.rmtree(p.folder)
        for kind, jobs in _jobs(p, root, _recipes(p, root), max(1, threads // lanes)).items():
            by_kind[kind].extend(jobs)
    jobs = by_kind["sft"] + by_kind["distill"] + by_kind["eval"]  # every size's SFT students first: lanes stay busy
    if jobs:
        console.print(f"running {len(jobs)} stages, {lanes} at a time; logs in {root / 'scale'}/SIZE/logs")
        Runner(console, lanes=lanes, threads=max(1, threads // lanes), cwd=root).run(jobs)
    for p in plans:
        if _finished(p):
            _stamper(p.folder / "scale.json", p.spec)()
    results = scale_results(root, plans)
    results["wall_s"] = round(time.perf_counter() - start, 1)
    out = root / "scale" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    demo_results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    demo_results["scale"] = results
    (root / "results.json").write_text(json.dumps(demo_results, indent=2) + "\n", encoding="utf-8")
    draw_scale_figure(results, root / "scale.png")
    return results


def _finished(p: ScalePlan) -> bool:
    from minillm_demo.recipes import stage

    s = p.settings
    return all((p.folder / "eval" / f"{stage(n, r)}.json").is_file() for n in _models(s) for r in range(s.train_runs))


def scale_results(root: Path, plans: Sequence[ScalePlan]) -> dict[str, Any]:
    """Every size (the demo's own student among them, from its ``results.json``), smallest first."""
    demo = json.loads((root / "results.json").read_text(encoding="utf-8"))
    settings = demo["settings"]
    vocab = int(settings["vocabulary"])
    rows = []
    own = settings_from_dict(settings["student"], _model_size_cls())
    methods = plans[0].settings.methods if plans else SCALE_METHODS
    if all(p.settings.student != own for p in plans):
        rows.append(
            {
                "name": size_name(own),
                "source": "demo",
                "parameters": own.parameters(vocab),
                "models": {m: demo[m] for m in ("sft", *methods) if m in demo},
            }
        )
    for p in plans:
        rows.append(
            {
                "name": p.name,
                "source": f"scale/{p.name}",
                "parameters": p.settings.student.parameters(vocab),
                "models": _collect(p),
                "overrides": p.spec["overrides"],
            }
        )
    rows.sort(key=lambda r: r["parameters"])
    return {
        "teacher": {"parameters": settings["teacher_parameters"], **{k: v for k, v in demo["teacher"].items()}},
        "methods": ["sft", *methods],
        "sizes": rows,
        "notes": "students of every size under the demo's one teacher, each size's chain (SFT, then every method "
        "from that run's SFT student) trained with the demo's steps and seeds; mean and std over training runs x "
        "sampling seeds",
    }


def _model_size_cls() -> type:
    from minillm_demo.config import ModelSize

    return ModelSize


def _stamper(stamp: Path, spec: dict[str, Any]):
    def stamp_it() -> None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(spec) + "\n", encoding="utf-8")

    return stamp_it
