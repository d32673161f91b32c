"""LoRA students (``student.lora`` in a recipe) through peft: wrap before training, merge when saving."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from minillm_distill.errors import ResourceError

if TYPE_CHECKING:  # the recipe section this module reads (the recipe layer sits above this one)
    from minillm_distill.recipe.schema import LoraSpec


def apply_lora(model: Any, spec: LoraSpec) -> Any:
    """The model with trainable low-rank adapters; every other weight frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ResourceError(
            "student.lora needs the peft package", hint="pip install 'minillm-distill[lora]' (or pip install peft)"
        ) from exc
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ResourceError(
            "cannot attach LoRA adapters to the student",
            why=str(exc).splitlines()[0],
            hint="set student.lora.target_modules to module names of this architecture (e.g. c_attn for GPT-2, "
            "q_proj/v_proj for LLaMA-style models)",
        ) from exc


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def merged_copy(model: Any) -> Any:
    """A plain transformers model with the adapters merged into the weights (the original is untouched)."""
    return copy.deepcopy(model).merge_and_unload()
