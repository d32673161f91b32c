"""``minillm distill RECIPE``: train a student from a teacher."""

from __future__ import annotations

from contextlib import AbstractContextManager
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
    total = loaded.train.total_steps
    if max_steps is not None and max_steps > total:
        from minillm_distill.errors import UsageError

        raise UsageError(
            f"--max-steps {max_steps} is beyond train.total_steps ({total}): the run would stop at step {total}",
            why="--max-steps stops a run early; the length of a run (and its LR schedule) is train.total_steps",
            hint=f"to train longer, or to extend a finished run with --resume: --set train.total_steps={max_steps}",
        )
    from minillm_distill.train.distributed import launched_externally

    run_dir = Path(output_dir or loaded.output_dir)
    if nproc > 1 and not launched_externally():
        from minillm_distill.train.launch import launch

        with _locked(run_dir):
            code = launch(nproc, state.argv, run_dir=run_dir)
        raise typer.Exit(code)

    from minillm_distill.train import distributed as dist_utils
    from minillm_distill.train.loop import RunOptions, run_distill

    with _locked(run_dir):
        opts = RunOptions(output_dir=output_dir, max_steps=max_steps, resume=resume, argv=list(state.argv))
        result = run_distill(loaded, opts)
    if dist_utils.is_main():
        where = result.final_dir or result.run_dir
        typer.echo(f"done: step {result.last_step}/{loaded.train.total_steps}; outputs in {where}")


def _locked(run_dir: Path) -> AbstractContextManager[None]:
    """The run folder's lock, taken by the process that owns the run: this one, unless it is a worker of
    ``--nproc`` (whose launcher holds it) or a rank other than 0 of an outside launcher (torchrun)."""
    import os
    from contextlib import nullcontext

    from minillm_distill.run_lock import run_folder_lock
    from minillm_distill.train.launch import EXIT_DIR_ENV

    if EXIT_DIR_ENV in os.environ or os.environ.get("RANK", "0") != "0":
        return nullcontext()
    return run_folder_lock(run_dir)


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)
