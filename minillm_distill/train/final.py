"""Writing a Hugging Face folder (safetensors + tokenizer + generation config) from a training engine,
atomically: a temporary folder renamed into place once complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from minillm_distill.file_modes import as_umask_allows
from minillm_distill.io_errors import writing
from minillm_distill.train import distributed as dist_utils


def gathered_state_dict(engine: Any) -> dict[str, Any] | None:
    """Full weights on rank 0 (collective under ZeRO-3; other ranks get None)."""
    if getattr(engine, "zero_optimization_stage", lambda: 0)() == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    return engine.module.state_dict() if dist_utils.is_main() else None


def save_hf_folder(
    engine: Any, tokenizer: Any, out: Path, card: str | None = None, *, prompt_format: str | None = None
) -> Path | None:
    """Collective. Rank 0 writes ``out`` (replacing it; with ``card`` as its README.md and the run's
    ``prompt_format`` in ``prompt_format.json``, which eval and generate use by default) and returns it."""
    state = gathered_state_dict(engine)
    if dist_utils.is_main():
        tmp = out.with_name(f".{out.name}.tmp")
        hint = "free space on that disk or choose another output.dir, then run the same command with --resume"
        with writing(out, "final model", cleanup=[tmp], hint=hint):
            shutil.rmtree(tmp, ignore_errors=True)
            from transformers.utils import logging as hf_logging

            from minillm_distill.lora import is_lora, merged_copy

            hf_logging.disable_progress_bar()
            model = engine.module
            if is_lora(model):  # a plain folder: adapters merged into the weights
                model = merged_copy(model).cpu()
                state = model.state_dict()
            state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
            model.save_pretrained(tmp, state_dict=state)
            tokenizer.save_pretrained(tmp)
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(tmp)
            if card is not None:
                (tmp / "README.md").write_text(card, encoding="utf-8")
            if prompt_format is not None:
                from minillm_distill.data.prompt_format import write_prompt_format

                write_prompt_format(tmp, prompt_format)
            as_umask_allows(tmp)
            if out.exists():
                old = out.with_name(f".{out.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(out, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, out)
    dist_utils.barrier()
    return out if dist_utils.is_main() else None
