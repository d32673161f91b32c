"""Generic fallback family: any causal LM ``AutoModelForCausalLM`` can load; resolves last."""

from __future__ import annotations

from minillm_distill.api import ModelFamily


class GenericFamily(ModelFamily):
    name = "generic"
    description = "any transformers causal LM (fallback; cannot build from scratch)"
    fallback = True
