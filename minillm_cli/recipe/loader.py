"""Reading, overriding and validating recipes; every problem is reported at once with its dotted location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from minillm_cli.errors import RecipeError, UsageError
from minillm_cli.plugins import PluginSet, get_plugins
from minillm_cli.recipe.schema import Recipe
from minillm_cli.recipe.yaml_io import load_yaml

Problem = tuple[str, str]  # (dotted location, message)


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _pydantic_problems(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[Problem]:
    out = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        out.append((_loc(prefix + loc), msg))
    return out


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
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(
            f"{p}: YAML syntax error at {where}",
            details=[f"{where}: {problem}"],
            hint="fix the YAML at that position (indentation, a missing colon, an unclosed bracket or quote)",
        ) from exc
    if data is None:
        raise RecipeError(f"{p}: the recipe is empty", hint="see `minillm recipes show tiny/kd` for a full example")
    if not isinstance(data, dict):
        raise RecipeError(
            f"{p}: a recipe must be a YAML mapping of sections, got {type(data).__name__}",
            details=["(top level): expected a mapping with teacher, student, data, divergence, ..."],
        )
    data.setdefault("name", p.stem)
    _resolve_data_paths(data, p.parent)
    return data


DATA_SUFFIXES = (".json", ".jsonl", ".txt", ".parquet", ".csv")


def _resolve_data_paths(data: dict[str, Any], base: Path) -> None:
    """Relative data paths resolve against the recipe's folder first, then the working directory."""
    section = data.get("data")
    if not isinstance(section, dict):
        return
    slots = [(section, "train"), (section, "valid")]
    if isinstance(section.get("pretrain"), dict):
        slots.append((section["pretrain"], "path"))
    for holder, key in slots:
        value = holder.get(key)
        if not isinstance(value, str) or Path(value).is_absolute():
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
            raise UsageError(f"bad --set {item!r}: value is not valid YAML ({exc})") from exc
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
        try:
            registry.get(name).Params.model_validate(options)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, (section,)))
    for role in ("teacher", "student"):
        spec = data.get(role)
        if not isinstance(spec, dict) or not isinstance(spec.get("family"), str):
            continue
        family = spec["family"]
        if family not in plugins.model_families:
            problems.append((f"{role}.family", plugins.model_families.unknown_message(family)))
            continue
        if isinstance(spec.get("scratch"), dict):
            try:
                plugins.model_families.get(family).Params.model_validate(spec["scratch"])
            except ValidationError as exc:
                problems.extend(_pydantic_problems(exc, (role, "scratch")))
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


def _cross_problems(recipe: Recipe, plugins: PluginSet) -> list[Problem]:
    problems: list[Problem] = []
    if recipe.teacher is None:
        for section, registry in (("divergence", plugins.divergences), ("sampler", plugins.samplers)):
            ref = getattr(recipe, section)
            if ref.name in registry and getattr(registry.get(ref.name), "needs_teacher", False):
                problems.append(("teacher", f"{section} {ref.name!r} needs a teacher model; add a `teacher:` section"))
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
    return out
