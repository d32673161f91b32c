"""The recipes shipped with minillm: the YAML files in ``minillm_distill/recipes/`` (package data). A recipe
path that does not exist, such as ``recipes/tiny/kd.yaml`` outside a folder holding one, names a shipped
recipe."""

from __future__ import annotations

from pathlib import Path

from minillm_distill.errors import RecipeError


def recipes_root() -> Path:
    return Path(__file__).resolve().parent.parent / "recipes"


def shipped_recipes() -> dict[str, Path]:
    """Recipe name (path under recipes/ without .yaml, e.g. ``tiny/kd``) -> file."""
    root = recipes_root()
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.rglob("*.yaml"))}


def resolve_recipe_path(name_or_path: str) -> Path:
    """A path as given if it exists, else a shipped recipe of that name."""
    p = Path(name_or_path)
    if p.exists():
        return p
    shipped = shipped_recipes()
    key = name_or_path.removesuffix(".yaml").removeprefix("recipes/")
    if key in shipped:
        return shipped[key]
    return p  # the loader reports it as missing


def shipped_recipe(name: str) -> Path:
    shipped = shipped_recipes()
    key = name.removesuffix(".yaml").removeprefix("recipes/")
    if key not in shipped:
        import difflib

        close = difflib.get_close_matches(key, list(shipped), n=1)
        raise RecipeError(
            f"no shipped recipe named {name!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "") + "run `minillm recipes list`",
        )
    return shipped[key]
