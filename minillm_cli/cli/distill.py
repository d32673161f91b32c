"""``minillm distill RECIPE``: train a student from a teacher."""

from __future__ import annotations

from pathlib import Path

import typer

from minillm_cli.cli.not_implemented import not_implemented
from minillm_cli.recipe.loader import load_recipe
from minillm_cli.recipe.shipped import resolve_recipe_path


def distill(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or a shipped recipe name (tiny/kd)."),
    overrides: list[str] = typer.Option([], "--set", help="Override any recipe key: --set train.lr=1e-5."),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="Run directory (default: output.dir)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this step."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel processes (torchrun underneath)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint."),
) -> None:
    """Distill a student from a teacher as the recipe says."""
    loaded = load_recipe(resolve_recipe_path(recipe), overrides)
    del output_dir, max_steps, nproc, resume
    raise not_implemented(
        "distill", f"recipe {loaded.name!r} is valid, but the training engine is not in this version yet"
    )


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)
