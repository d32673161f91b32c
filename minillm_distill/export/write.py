"""Writing the exported folder: whole or not at all (a temporary sibling renamed into place), with write
failures as resource errors naming the path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.export.card import RECIPE_COPY
from minillm_distill.export.run import RunInfo
from minillm_distill.file_modes import as_umask_allows
from minillm_distill.io_errors import resource_error


def check_output(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {str(out)!r} exists and is not a directory", hint="choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(
            f"output folder {str(out)!r} is not empty",
            hint="choose another OUT, or add --force to replace it",
        )


def write_folder(out: Path, fill: Any) -> Path:
    """Run ``fill(tmp)`` on a temporary sibling of ``out``, then move it into place (replacing ``out``).
    On any failure the temporary folder is removed and ``out`` is left as it was."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        fill(tmp)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def write_export(out: Path, run: RunInfo, model: Any, tokenizer: Any, card: str) -> None:
    """The Hugging Face folder ``out``: weights, config, generation config, tokenizer, the model card, the run's
    recipe and its prompt format."""

    def fill(tmp: Path) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / RECIPE_COPY).write_text(run.recipe_text, encoding="utf-8")
        data_section = run.recipe.get("data")
        if isinstance(data_section, dict) and isinstance(data_section.get("prompt_format"), str):
            from minillm_distill.data.prompt_format import write_prompt_format

            write_prompt_format(tmp, data_section["prompt_format"])
        as_umask_allows(tmp)

    try:
        write_folder(out, fill)
    except Exception as exc:
        hint = "free space on that disk or choose another OUT; nothing was written"
        err = resource_error(exc, out, "export", hint=hint)
        if err is not None:
            raise err from exc
        if not isinstance(exc, OSError):
            raise
        raise ResourceError(
            f"cannot write the export to {str(out)!r}; nothing was written",
            why=f"{type(exc).__name__}: {exc}",
            hint="check the free disk space and that OUT's parent folder is writable",
        ) from exc
