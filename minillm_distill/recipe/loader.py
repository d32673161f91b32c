"""Reading, overriding and validating recipes; every problem is reported at once with its dotted location."""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from minillm_distill.divergence import SequenceDivergence
from minillm_distill.errors import RecipeError, UsageError
from minillm_distill.gguf import file_sha256, is_gguf
from minillm_distill.plugins import PluginSet, get_plugins
from minillm_distill.recipe.schema import Recipe
from minillm_distill.recipe.yaml_io import DuplicateKeyError, ExpansionError, load_yaml

Problem = tuple[str, str]  # (dotted location, message)

PLUGIN_SECTIONS = ("sampler", "divergence")
MAPPING_ERRORS = {"model_type", "model_attributes_type", "dict_type"}
_VALIDATOR_STEP = re.compile(r"^function-(after|before|wrap|plain)\[")  # pydantic's names for validator steps


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _describe(value: Any) -> str:
    """How a YAML value reads to the user, for "expected X, got Y" messages."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``TrainSpec`` or ``ModelSpec | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _known_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the section at ``loc`` (relative to ``model``) accepts, or None if that is not a model."""
    for part in loc:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        if field is None:
            return None
        model = _model_in(field.annotation)
    if model is None:
        return None
    return list(model.model_fields)


def _message(err: Any, loc: tuple[Any, ...], model: type[BaseModel] | None, plugin_options: bool) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        known = _known_keys(model, loc[:-1])
        if plugin_options and known is not None:
            known = ["name", *known]
        if known is not None:
            msg = f"unknown key {loc[-1]!r}; allowed here: {', '.join(known)}"
            close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.7)
            return msg + (f". Did you mean {close[0]!r}?" if close else "")
        return f"unknown key {loc[-1]!r}"
    if kind in MAPPING_ERRORS:
        msg = f"expected a section (a mapping of key: value), got {_describe(value)}"
        if len(loc) == 1 and isinstance(value, str):
            if loc[0] in PLUGIN_SECTIONS:
                msg += f"; write `{loc[0]}: {{name: {value}}}`"
            elif loc[0] in ("teacher", "student"):
                msg += f"; write `{loc[0]}: {{path: {value}}}`"
        return msg
    return str(err["msg"]).removeprefix("Value error, ")


def _pydantic_problems(
    exc: ValidationError,
    prefix: tuple[Any, ...] = (),
    model: type[BaseModel] | None = Recipe,
    *,
    plugin_options: bool = False,
) -> list[Problem]:
    """``(dotted location, message)`` per error; ``model`` is what was validated (for "allowed keys" lists)."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _VALIDATOR_STEP.match(p)))
        out.append((_loc(prefix + loc), _message(err, loc, model, plugin_options)))
    return out


def _yaml_position(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}"
    position = getattr(exc, "position", None)  # ReaderError: a character YAML does not allow
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return f"line {line}, column {column}"
    return "unknown position"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return f"character {char!r} (#x{ord(char):04x}) is not allowed in YAML"
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{problem} ({context})" if context else problem


def _default_name(path: Path) -> str:
    """A run name from the file name, made valid (``my kd (v2).yaml`` -> ``my-kd-v2``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-_.") or "recipe"


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise RecipeError(
            f"recipe file not found: {p}",
            hint="check the path, or run `minillm recipes list` for the shipped recipes",
        )
    if p.is_dir():
        raise RecipeError(f"recipe path is a directory, not a YAML file: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {p}: {exc}") from exc
    try:
        data = load_yaml(text)
    except DuplicateKeyError as exc:
        n = len(exc.duplicates)
        raise RecipeError(
            f"{p}: {n} key{'s' if n > 1 else ''} given twice",
            details=[f"{loc}: {msg}" for loc, msg in exc.duplicates],
            hint="YAML would silently keep only the last value; delete or merge the repeated key",
        ) from exc
    except ExpansionError as exc:
        raise RecipeError(
            f"{p}: the YAML is too large once its aliases are expanded",
            details=[str(exc)],
            hint="write the values out, or use fewer nested *alias references",
        ) from exc
    except yaml.YAMLError as exc:
        where = _yaml_position(exc, text)
        raise RecipeError(
            f"{p}: YAML syntax error at {where}",
            details=[f"{where}: {_yaml_problem(exc)}"],
            hint="fix the YAML at that position (indentation, a missing colon, an unclosed bracket or quote, "
            "a tab instead of spaces)",
        ) from exc
    if data is None:
        raise RecipeError(f"{p}: the recipe is empty", hint="see `minillm recipes show tiny/kd` for a full example")
    if not isinstance(data, dict):
        raise RecipeError(
            f"{p}: a recipe must be a YAML mapping of sections, got {type(data).__name__}",
            details=["(top level): expected a mapping with teacher, student, data, divergence, ..."],
        )
    data.setdefault("name", _default_name(p))
    _resolve_data_paths(data, p.parent)
    return data


DATA_SUFFIXES = (".json", ".jsonl", ".txt", ".parquet", ".csv")


def _resolve_data_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths (training and evaluation data, model folders) resolve against the recipe's folder first,
    then the working directory (a model path found in neither stays as written: it may be a hub id)."""
    slots: list[tuple[dict[str, Any], str]] = []
    section = data.get("data")
    if isinstance(section, dict):
        slots += [(section, "train"), (section, "valid")]
        if isinstance(section.get("pretrain"), dict):
            slots.append((section["pretrain"], "path"))
    evaluation = data.get("eval")
    if isinstance(evaluation, dict) and isinstance(evaluation.get("data"), dict):
        slots += [(evaluation["data"], bench) for bench in evaluation["data"]]
    for role in ("teacher", "student"):
        if isinstance(data.get(role), dict):
            slots += [(data[role], "path"), (data[role], "tokenizer")]
    slots.append((data, "teacher_cache"))
    for holder, key in slots:
        value = holder.get(key)
        if not isinstance(value, str):
            continue
        value = holder[key] = os.path.expanduser(value)
        if Path(value).is_absolute():
            continue
        beside = base / value
        if beside.exists():
            holder[key] = str(beside.resolve())


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[list[str], Any]]:
    """``["train.lr=1e-5", ...]`` -> ``[(["train", "lr"], 1e-05), ...]``; values are parsed as YAML."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        keys = key.strip().split(".")
        if not sep or not all(k.strip() for k in keys):
            raise UsageError(
                f"bad --set {item!r}",
                hint="write --set section.key=value, e.g. --set train.lr=1e-5 or --set divergence.name=rkl",
            )
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            shown = item if len(item) <= 80 else f"{item[:60]}... ({len(item):,} characters)"
            raise UsageError(f"bad --set {shown!r}: value is not valid YAML ({exc})") from exc
        parsed.append(([k.strip() for k in keys], value))
    return parsed


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    for keys, value in parse_overrides(overrides):
        node = data
        for i, k in enumerate(keys[:-1]):
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise UsageError(
                    f"--set {'.'.join(keys)}: {'.'.join(keys[: i + 1])} is a {type(child).__name__}, not a section"
                )
            node = child
        node[keys[-1]] = value
    return data


def _plugin_problems(data: dict[str, Any], plugins: PluginSet) -> list[Problem]:
    problems: list[Problem] = []
    for section, registry in (("sampler", plugins.samplers), ("divergence", plugins.divergences)):
        ref = data.get(section, {"name": "dataset"} if section == "sampler" else None)
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            continue  # the schema reports the shape problem
        name = ref["name"]
        if name not in registry:
            problems.append((f"{section}.name", registry.unknown_message(name)))
            continue
        options = {k: v for k, v in ref.items() if k != "name"}
        problems.extend(_validate_options(registry.get(name).Params, options, (section,), plugin_section=True))
    for role in ("teacher", "student"):
        spec = data.get(role)
        if not isinstance(spec, dict) or not isinstance(spec.get("family"), str):
            continue
        family = spec["family"]
        if family not in plugins.model_families:
            problems.append((f"{role}.family", plugins.model_families.unknown_message(family)))
            continue
        if isinstance(spec.get("scratch"), dict):
            params = plugins.model_families.get(family).Params
            problems.extend(_validate_options(params, spec["scratch"], (role, "scratch")))
    return problems


def _numeric(annotation: Any) -> type | None:
    """``int`` or ``float`` if the annotation is one (or an Optional/Annotated one)."""
    if annotation in (int, float):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        kinds = {_numeric(a) for a in typing.get_args(annotation)} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    return None


def _validate_options(
    params: type[BaseModel], options: dict[str, Any], prefix: tuple[str, ...], *, plugin_section: bool = False
) -> list[Problem]:
    """Check plugin options with the plugin's ``Params``, also refusing what pydantic's lax mode lets
    through for a number: a boolean (``true`` would read as 1) or an infinite / NaN float."""
    problems: list[Problem] = []
    for key, value in options.items():
        field = params.model_fields.get(key) if isinstance(key, str) else None
        kind = _numeric(field.annotation) if field is not None else None
        if kind is None:
            continue
        if isinstance(value, bool):
            problems.append((_loc((*prefix, key)), f"Input should be a number, not the boolean {str(value).lower()}"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append((_loc((*prefix, key)), "Input should be a finite number"))
    try:
        params.model_validate(options)
    except ValidationError as exc:
        flagged = {loc for loc, _ in problems}
        found = _pydantic_problems(exc, prefix, params, plugin_options=plugin_section)
        problems.extend(p for p in found if p[0] not in flagged)
    return problems


def _data_problems(data: dict[str, Any]) -> list[Problem]:
    section = data.get("data")
    if not isinstance(section, dict):
        return []
    locations = [("data.train", section.get("train")), ("data.valid", section.get("valid"))]
    if isinstance(section.get("pretrain"), dict):
        locations.append(("data.pretrain.path", section["pretrain"].get("path")))
    return [
        (
            loc,
            f"data file not found: {value} (relative paths are tried beside the recipe, then in the working directory)",
        )
        for loc, value in locations
        if isinstance(value, str) and value.endswith(DATA_SUFFIXES) and not Path(value).exists()
    ]


def _teacher_cache_problems(recipe: Recipe, plugins: PluginSet) -> list[Problem]:
    """A cache holds the teacher's view of the data's gold responses (or of the responses it wrote itself): only
    an off-policy sampler that replays them, or one that writes with the teacher alone (SeqKD), and a token-level
    divergence can train from it."""
    problems: list[Problem] = []
    sampler, div = recipe.sampler.name, recipe.divergence.name
    cls = plugins.samplers.get(sampler) if sampler in plugins.samplers else None
    if cls is not None and not (getattr(cls, "replays_data", False) or getattr(cls, "teacher_writes", False)):
        problems.append(("teacher_cache", f"sampler {sampler!r} writes responses with the student, which no cache "
                         "holds: use sampler dataset (word-level KD) or teacher (SeqKD), or a teacher instead of "
                         "teacher_cache"))  # fmt: skip
    if div in plugins.divergences and issubclass(plugins.divergences.get(div), SequenceDivergence):
        problems.append(("teacher_cache", f"divergence {div!r} trains on the student's own samples (on-policy), "
                         "which no cache holds: use a token-level divergence (fkl for word-level KD)"))  # fmt: skip
    return problems


def _cross_problems(recipe: Recipe, plugins: PluginSet) -> list[Problem]:
    problems: list[Problem] = []
    if recipe.teacher is None:
        for section, registry in (("divergence", plugins.divergences), ("sampler", plugins.samplers)):
            ref = getattr(recipe, section)
            if ref.name not in registry:  # an unknown name: reported by validation
                continue
            cached = section == "divergence" or getattr(registry.get(ref.name), "teacher_writes", False)
            if recipe.teacher_cache is not None and cached:
                continue  # the cache stands in for the teacher (checked below)
            if getattr(registry.get(ref.name), "needs_teacher", False):
                problems.append(("teacher", f"{section} {ref.name!r} needs a teacher model; add a `teacher:` section"))
    if recipe.teacher_cache is not None:
        problems += _teacher_cache_problems(recipe, plugins)
    if recipe.teacher is not None and recipe.teacher.lora is not None:
        problems.append(("teacher.lora", "the teacher is frozen; LoRA adapters apply to the student only"))
    if recipe.student.lora is not None and recipe.engine.zero_stage == 3:
        problems.append(("student.lora", "LoRA students are supported with ZeRO stages 0-2 in this version"))
    div = recipe.divergence.name
    if recipe.data.pretrain is not None and div in plugins.divergences:
        cls = plugins.divergences.get(div)
        if not issubclass(cls, SequenceDivergence) or cls.pretrain_loss is SequenceDivergence.pretrain_loss:
            problems.append(
                (
                    "data.pretrain",
                    f"divergence {div!r} has no pretraining term, so the corpus would be ignored; remove "
                    "data.pretrain or use a divergence with one (minillm: lm_coef, kd_ratio)",
                )
            )
    return problems


def validate_recipe_dict(data: dict[str, Any], *, source: str = "recipe", plugins: PluginSet | None = None) -> Recipe:
    plugins = plugins if plugins is not None else get_plugins()
    plugins.check()
    problems: list[Problem] = []
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    problems.extend(_plugin_problems(data, plugins))
    problems.extend(_data_problems(data))
    if recipe is not None:
        problems.extend(_cross_problems(recipe, plugins))
    if problems:
        seen: set[Problem] = set()
        unique = [p for p in problems if not (p in seen or seen.add(p))]
        n = len(unique)
        raise RecipeError(
            f"{source}: {n} problem{'s' if n > 1 else ''}",
            details=[f"{loc}: {msg}" for loc, msg in unique],
            hint="fix each location listed (dotted path into the YAML); `minillm recipes show tiny/kd` has a "
            "complete example",
        )
    assert recipe is not None
    return recipe


def load_recipe(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, plugins: PluginSet | None = None
) -> Recipe:
    """Read ``path``, apply ``--set`` overrides, validate everything (plugin options included)."""
    data = apply_overrides(read_recipe_file(path), overrides)
    return validate_recipe_dict(data, source=str(path), plugins=plugins)


def _plugin_section(ref: Any, registry: Any) -> dict[str, Any]:
    params: BaseModel = registry.get(ref.name).Params.model_validate(ref.options)
    return {"name": ref.name, **params.model_dump(mode="json")}


def resolved_recipe_dict(recipe: Recipe, plugins: PluginSet | None = None) -> dict[str, Any]:
    """The recipe with every default filled in, plugin defaults included (what a run writes out)."""
    plugins = plugins if plugins is not None else get_plugins()
    out = recipe.model_dump(mode="json")
    out["sampler"] = _plugin_section(recipe.sampler, plugins.samplers)
    out["divergence"] = _plugin_section(recipe.divergence, plugins.divergences)
    for role in ("teacher", "student"):
        spec = getattr(recipe, role)
        if (
            spec is not None
            and spec.path is not None
            and spec.sha256 is None
            and is_gguf(spec.path)
            and Path(spec.path).expanduser().is_file()
        ):
            out[role]["sha256"] = file_sha256(Path(spec.path).expanduser())  # the run records which file it read
    return out
