"""Recipes: YAML files validated into frozen pydantic models."""

from minillm_cli.recipe.loader import load_recipe, parse_overrides, resolved_recipe_dict
from minillm_cli.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "parse_overrides", "resolved_recipe_dict"]
