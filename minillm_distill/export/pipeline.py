"""``export_checkpoint``: find the checkpoint and its run, read the weights, rebuild and merge the student,
write the folder with its model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minillm_distill import run_layout
from minillm_distill.errors import UsageError
from minillm_distill.export.card import metrics_at, model_card, prompt_example
from minillm_distill.export.run import Checkpoint, read_run, resolve_checkpoint
from minillm_distill.export.student import merged_student
from minillm_distill.export.weights import DTYPES, checkpoint_weights
from minillm_distill.export.write import check_output, write_export


@dataclass(frozen=True)
class ExportResult:
    out: Path
    checkpoint: Checkpoint
    dtype: str
    zero_stage: int
    source: str
    """``"module"`` (full weights from the model states) or ``"zero_to_fp32"`` (consolidated partitions)."""


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dtype: str | None = None,
    force: bool = False,
    recipe: str | Path | None = None,
    trust_remote_code: bool = False,
) -> ExportResult:
    """Export ``checkpoint`` (a ``step-N`` folder or a run directory) to the Hugging Face folder ``out``.
    ``trust_remote_code`` (the caller's, never the run folder's) lets a model folder's own code run."""
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint=f"choose one of {', '.join(DTYPES)}")
    out = Path(out).expanduser()
    check_output(out, force=force)
    ck = resolve_checkpoint(checkpoint)
    if out.absolute() == ck.path.absolute() or ck.path.absolute() in out.absolute().parents:
        raise UsageError(f"output {str(out)!r} is inside the checkpoint", hint="choose an OUT outside it")
    recipe_path = (
        Path(recipe).expanduser()  # the user's own file
        if recipe is not None
        else run_layout.inside(ck.run_dir, ck.run_dir / run_layout.RECIPE, "recipe.yaml")
    )
    run = read_run(recipe_path, trust_remote_code=trust_remote_code)
    dtype_name = dtype or run.engine.dtype
    torch_dtype = DTYPES[dtype_name]

    weights, source = checkpoint_weights(ck, torch_dtype)
    loaded = merged_student(run.student, weights, torch_dtype, trust_asked=run.trust_asked)
    del weights
    total = run.recipe.get("train", {}).get("total_steps") if isinstance(run.recipe.get("train"), dict) else None
    card = model_card(
        run,
        step=ck.step,
        total_steps=total if isinstance(total, int) else None,
        dtype=dtype_name,
        metrics=metrics_at(ck.run_dir, ck.step),
        prompt_example=prompt_example(run, loaded.family, loaded.tokenizer),
    )
    write_export(out, run, loaded.model, loaded.tokenizer, card)
    return ExportResult(out=out, checkpoint=ck, dtype=dtype_name, zero_stage=run.engine.zero_stage, source=source)
