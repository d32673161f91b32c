"""``minillm recipes list | show NAME | validate FILE...``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from minillm_distill.cli.render import render_error
from minillm_distill.cli.state import state
from minillm_distill.errors import ExitCode, RecipeError
from minillm_distill.recipe.shipped import recipes_root, shipped_recipe, shipped_recipes

app = typer.Typer(help="List, show and validate recipes.", no_args_is_help=True)
console = Console()


def _header_summary(path: Path) -> str:
    """First comment line of a recipe (its header says what it reproduces)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if s.startswith("#"):
            text = s.lstrip("#").strip()
            if text:
                return text
        elif s:
            break
    return ""


@app.command("list")
def list_recipes() -> None:
    """The recipes shipped with minillm."""
    from rich.table import Table

    table = Table(title=f"shipped recipes ({recipes_root()})")
    table.add_column("name")
    table.add_column("what it is")
    for name, path in shipped_recipes().items():
        table.add_row(name, _header_summary(path))
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Recipe name from `minillm recipes list`, e.g. tiny/kd.")) -> None:
    """Print a shipped recipe (redirect it to a file to start your own: `... show tiny/kd > mine.yaml`)."""
    from minillm_distill.recipe.copy import local_data_paths

    path = shipped_recipe(name)
    text = path.read_text(encoding="utf-8")
    data = local_data_paths(path)
    if data:  # on stderr: `show NAME > mine.yaml` still writes the recipe verbatim, and the user sees this
        key = path.relative_to(recipes_root()).with_suffix("").as_posix()
        Console(stderr=True, highlight=False).print(
            f"# this recipe reads {', '.join(data)} relative to its own folder: "
            f"`minillm recipes copy {key} DIR` copies it with its data",
            markup=False,
            soft_wrap=True,
        )
    if console.is_terminal:
        from rich.syntax import Syntax

        # soft_wrap: the terminal folds long lines, Rich inserts no newlines (a copied comment stays a comment)
        console.print(Syntax(text, "yaml", theme="ansi_dark"), soft_wrap=True)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")  # verbatim, valid YAML


@app.command("copy")
def copy(
    name: str = typer.Argument(..., help="Recipe name from `minillm recipes list`, e.g. tiny/kd."),
    directory: Path = typer.Argument(..., help="Folder to copy into (created if needed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist there."),
) -> None:
    """Copy a shipped recipe and the data files it names into DIR (relative paths stay valid)."""
    from minillm_distill.recipe.copy import copy_recipe

    written = copy_recipe(name, directory, force=force)
    for path in written:
        console.print(f"wrote {escape(str(path))}", soft_wrap=True, highlight=False)
    console.print(f"run it with: minillm distill {escape(str(written[0]))}", soft_wrap=True, highlight=False)


@app.command("schema")
def schema() -> None:
    """Print the recipe JSON Schema (installed plugins' options included) for your editor.

    Save it (`minillm recipes schema > recipe.schema.json`) and put `# yaml-language-server: $schema=recipe.schema.json`
    at the top of a recipe.
    """
    import json

    from minillm_distill.recipe.json_schema import recipe_json_schema

    skipped: list[str] = []
    text = json.dumps(recipe_json_schema(skipped=skipped), indent=2)
    for line in skipped:  # a broken plugin's classes are left out, the schema is still everyone's
        sys.stderr.write(f"warning: {line}\n")
    sys.stdout.write(text + "\n")


@app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="Recipe YAML files, or shipped recipe names (tiny/kd)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.lr=1e-5."),
    schema_only: bool = typer.Option(
        False, "--schema-only", help="Check the YAML, schema and plugin options only; read no models or data."
    ),
) -> None:
    """Check recipes as `distill` would before training (plugin options, model configs and tokenizers,
    data files; never weights); exit 3 if any is invalid."""
    from minillm_distill.recipe.loader import load_recipe  # imports torch: not at start-up
    from minillm_distill.recipe.preflight import preflight
    from minillm_distill.recipe.shipped import resolve_recipe_path

    bad = 0
    for f in files:
        try:
            recipe = load_recipe(resolve_recipe_path(str(f)), overrides)  # a path, or a shipped name like distill
            if not schema_only:
                preflight(recipe, source=str(f))
        except RecipeError as err:
            bad += 1
            render_error(err, debug=state.debug)
            continue
        summary = f"{escape(str(f))}: {recipe.name} ({recipe.sampler.name} x {recipe.divergence.name})"
        console.print(f"[green]ok[/] {summary}", soft_wrap=True)
    if bad:
        raise typer.Exit(int(ExitCode.RECIPE))
