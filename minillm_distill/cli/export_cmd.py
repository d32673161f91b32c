"""``minillm export CHECKPOINT OUT``: DeepSpeed checkpoint (any ZeRO stage) -> Hugging Face folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class ExportDtype(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def export(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint folder (RUN/checkpoints/step-N), or a run directory to export its latest one."
    ),
    out: Path = typer.Argument(..., help="The Hugging Face folder to write (must be empty or absent)."),
    dtype: ExportDtype | None = typer.Option(
        None, "--dtype", help="Weight dtype of the export (default: the run's engine.dtype, i.e. as trained)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it is not empty."),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="The run's resolved recipe.yaml (default: RUN/recipe.yaml next to checkpoints/)."
    ),
    trust_remote_code: bool = typer.Option(
        False,
        "--trust-remote-code",
        help="Run the Python code a model folder ships (its config's auto_map) to rebuild the student. Only this "
        "flag gives that trust: a run folder's recipe.yaml saying trust_remote_code is never obeyed.",
    ),
) -> None:
    """Turn a training checkpoint into a plain Hugging Face folder (safetensors, tokenizer, model card)."""
    from minillm_distill.export import export_checkpoint

    result = export_checkpoint(
        checkpoint,
        out,
        dtype=dtype.value if dtype is not None else None,
        force=force,
        recipe=recipe,
        trust_remote_code=trust_remote_code,
    )
    ck = result.checkpoint
    typer.echo(
        f"exported step {ck.step} of {ck.run_dir} (ZeRO stage {result.zero_stage}, {result.dtype}) to {result.out}"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
