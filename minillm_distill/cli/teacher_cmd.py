"""``minillm teacher capture RECIPE --output DIR``: the teacher's top-k log-probabilities over the recipe's
training data, captured once (docs/teacher-cache.md)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The teacher out of training memory: capture its top-k once.", no_args_is_help=True)


@app.command("capture")
def capture_command(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or a shipped recipe name (tiny/kd)."),
    output: Path = typer.Option(..., "--output", "-o", help="The cache folder (a new one, or one to finish)."),
    k: int = typer.Option(64, "--k", min=1, max=4096, help="Teacher tokens kept per position."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key, as for distill."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Records the teacher scores together."),
    shard_records: int = typer.Option(1024, "--shard-records", min=1, help="Records per shard file."),
    teacher_url: str | None = typer.Option(
        None,
        "--teacher-url",
        help="Ask a served teacher instead of loading it: an OpenAI-compatible /v1 address "
        "that returns prompt log-probs (vLLM).",
    ),  # fmt: skip
    teacher_model: str | None = typer.Option(
        None, "--teacher-model", help="The served model's name (default: the only one the server lists)."
    ),
) -> None:
    """Run the recipe's teacher once over its training data (prompt + gold response, encoded as `distill` does)
    and write, per response token, its top-k token ids and log-probabilities at the recipe's temperature and the
    log of the remaining mass. Resumable: run the same command again after a stop."""
    from rich.console import Console

    from minillm_distill.recipe.loader import load_recipe
    from minillm_distill.recipe.shipped import resolve_recipe_path
    from minillm_distill.teacher_cache.from_recipe import capture_recipe

    loaded = load_recipe(resolve_recipe_path(recipe), overrides)
    result = capture_recipe(loaded, output, k=k, batch_size=batch_size, shard_records=shard_records,
                            teacher_url=teacher_url, teacher_model=teacher_model)  # fmt: skip
    done = result.records - result.resumed_from
    rate = result.tokens_this_run / max(result.seconds, 1e-9)
    Console(stderr=True, highlight=False).print(
        f"captured {result.records} records, {result.tokens:,} response tokens"
        + (f" (resumed after {result.resumed_from})" if result.resumed_from else "")
        + f": {result.bytes_per_token:.1f} bytes per token, {result.bytes / 2**20:.1f} MiB, "
        + (f"{rate:,.0f} tokens/s" if done else "nothing left to capture"),
        soft_wrap=True,
    )
    typer.echo(str(output))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="teacher")
