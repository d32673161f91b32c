"""Recipes: YAML files validated into frozen pydantic models.

Names are imported on first use: ``minillm_distill.recipe.shipped`` (``recipes list``) must not pull in the loader,
which imports the plugin base classes and torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Recipe": "minillm_distill.recipe.schema",
    "load_recipe": "minillm_distill.recipe.loader",
    "parse_overrides": "minillm_distill.recipe.loader",
    "resolved_recipe_dict": "minillm_distill.recipe.loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


if TYPE_CHECKING:
    from minillm_distill.recipe.loader import load_recipe, parse_overrides, resolved_recipe_dict
    from minillm_distill.recipe.schema import Recipe
