"""Finding what to export: a ``step-N`` checkpoint folder (or a run's latest) and the run's resolved recipe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from minillm_distill.errors import RecipeError, ResourceError
from minillm_distill.recipe.schema import EngineSpec, ModelSpec
from minillm_distill.recipe.yaml_io import load_yaml
from minillm_distill.run_layout import CHECKPOINTS, ENGINE_TAG, RECIPE, STATE_FILE, TMP_PREFIX, latest_checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """A resolved ``step-N`` folder and the run it belongs to."""

    path: Path
    run_dir: Path
    step: int
    state: dict[str, Any]


@dataclass(frozen=True)
class RunInfo:
    """What the run's resolved ``recipe.yaml`` says about the models."""

    recipe: dict[str, Any]
    recipe_text: str
    student: ModelSpec
    teacher: ModelSpec | None
    engine: EngineSpec
    name: str
    trust_asked: bool = False
    """The file set ``trust_remote_code`` for a model, which was not obeyed (the caller gave no trust)."""


def resolve_checkpoint(path: str | Path) -> Checkpoint:
    """``path`` is a ``step-N`` folder, its ``engine`` subfolder, or a run directory (its latest checkpoint)."""
    given = Path(path).expanduser()
    if not given.exists():
        raise ResourceError(f"checkpoint {str(given)!r} does not exist", hint="give RUN/checkpoints/step-N or RUN")
    if not given.is_dir():
        raise ResourceError(f"checkpoint {str(given)!r} is not a directory", hint="give RUN/checkpoints/step-N")
    ck = given
    if ck.name == ENGINE_TAG and (ck.parent / STATE_FILE).exists():
        ck = ck.parent
    if ck.name == CHECKPOINTS and not (ck / STATE_FILE).exists():
        ck = ck.parent  # RUN/checkpoints: the run's latest
    if not (ck / STATE_FILE).exists():
        if (ck / CHECKPOINTS).is_dir() or (ck / RECIPE).exists():
            latest = latest_checkpoint(ck)
            if latest is None:
                raise ResourceError(
                    f"run {str(ck)!r} has no complete checkpoint in {str(ck / 'checkpoints')!r}",
                    hint="train with train.save_every below total_steps, or export the run's final/ folder as is",
                )
            ck = latest
        elif ck.name.startswith(TMP_PREFIX):
            raise ResourceError(
                f"{str(ck)!r} is an incomplete checkpoint (the run stopped while writing it)",
                hint="export a complete step-N folder (it has state.json)",
            )
        else:
            raise ResourceError(
                f"{str(ck)!r} is neither a checkpoint (no {STATE_FILE}) nor a run directory (no checkpoints/)",
                hint="give RUN/checkpoints/step-N, or the run directory to export its latest checkpoint",
            )
    if not (ck / ENGINE_TAG).is_dir():
        raise ResourceError(
            f"checkpoint {str(ck)!r} has no {ENGINE_TAG}/ folder of DeepSpeed weights",
            hint="was it written by `minillm distill`?",
        )
    try:
        state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResourceError(f"cannot read {str(ck / STATE_FILE)!r}", why=str(exc)) from exc
    if not isinstance(state, dict):
        raise ResourceError(f"{str(ck / STATE_FILE)!r} is not a JSON object", hint="is it a minillm checkpoint?")
    step = state.get("step")
    if not isinstance(step, int):
        try:
            step = int(ck.name.split("-", 1)[1])
        except (IndexError, ValueError):
            step = -1
    run_dir = ck.parent.parent if ck.parent.name == CHECKPOINTS else ck.parent
    return Checkpoint(path=ck, run_dir=run_dir, step=step, state=state)


def read_run(recipe_path: Path, *, trust_remote_code: bool = False) -> RunInfo:
    """The student/teacher specs and engine settings from a run's resolved ``recipe.yaml``. Their
    ``trust_remote_code`` is the caller's (the command line's), whatever the file says: a run folder never
    grants itself the right to run code (``trust_asked`` records that it asked)."""
    if not recipe_path.exists():
        raise ResourceError(
            f"no recipe.yaml at {str(recipe_path)!r}",
            why="export rebuilds the student architecture and tokenizer from the run's resolved recipe",
            hint="keep the checkpoint inside its run directory (RUN/checkpoints/step-N), or pass --recipe",
        )
    text = recipe_path.read_text(encoding="utf-8")
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"cannot parse {str(recipe_path)!r}", why=str(exc).splitlines()[0]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("student"), dict):
        raise RecipeError(f"{str(recipe_path)!r} has no `student` section", hint="is it a minillm recipe?")
    problems: list[str] = []

    def section(key: str, model: Any) -> Any:
        raw = data.get(key)
        if raw is None:
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problems.extend(f"{'.'.join([key, *map(str, e['loc'])])}: {e['msg']}" for e in exc.errors())
            return None

    student = section("student", ModelSpec)
    teacher = section("teacher", ModelSpec)
    engine = section("engine", EngineSpec) or EngineSpec()
    if problems or student is None:
        raise RecipeError(f"invalid recipe {str(recipe_path)!r}", details=problems)
    asked = [
        k for k, spec in (("student", student), ("teacher", teacher)) if spec is not None and spec.trust_remote_code
    ]
    student = student.model_copy(update={"trust_remote_code": trust_remote_code})
    if teacher is not None:
        teacher = teacher.model_copy(update={"trust_remote_code": trust_remote_code})
    return RunInfo(
        recipe=data,
        recipe_text=text,
        student=student,
        teacher=teacher,
        engine=engine,
        name=str(data.get("name") or recipe_path.parent.name),
        trust_asked=bool(asked) and not trust_remote_code,
    )
