"""``minillm distill RECIPE``: train a student from a teacher."""

from __future__ import annotations

from pathlib import Path

import typer

from minillm_distill.cli.state import state
from minillm_distill.recipe.shipped import resolve_recipe_path


def distill(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or a shipped recipe name (tiny/kd)."),
    overrides: list[str] = typer.Option([], "--set", help="Override any recipe key: --set train.lr=1e-5."),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="Run directory (default: output.dir)."),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, help="Stop after this step (the LR schedule still follows train.total_steps)."
    ),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in the run dir."),
) -> None:
    """Distill a student from a teacher as the recipe says."""
    from minillm_distill.recipe.loader import load_recipe  # imports torch: not at start-up
    from minillm_distill.recipe.preflight import preflight

    path = resolve_recipe_path(recipe)
    loaded = load_recipe(path, overrides)
    preflight(loaded, source=str(path))  # every check `recipes validate` makes, before any process starts
    from minillm_distill.train.distributed import launched_externally

    if nproc > 1 and not launched_externally():
        from minillm_distill.train.launch import launch

        raise typer.Exit(launch(nproc, state.argv, run_dir=Path(output_dir or loaded.output_dir)))

    from minillm_distill.train import distributed as dist_utils
    from minillm_distill.train.loop import RunOptions, run_distill

    result = run_distill(loaded, RunOptions(output_dir=output_dir, max_steps=max_steps, resume=resume))
    if dist_utils.is_main():
        where = result.final_dir or result.run_dir
        typer.echo(f"done: step {result.last_step}/{loaded.train.total_steps}; outputs in {where}")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)
