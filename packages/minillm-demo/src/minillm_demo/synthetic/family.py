"""The ``synthetic`` model family: GPT-2 models trained on the synthetic task, prompted with the bare instruction.

The architecture is GPT-2's (it builds from scratch exactly like the ``gpt2`` family, and a saved model is a
plain GPT-2 folder), but prompts are not wrapped in the Alpaca template: the task's instructions are
8 words (``map g3 : x05 x17 x02 _ _``), and the template would make every prompt about 3.5 times longer,
which only costs time on a CPU. ``model_types`` is empty, so a saved model is never detected as
``synthetic``: name the family in the model spec (``{path: run/final, family: synthetic}``).
"""

from __future__ import annotations

from typing import ClassVar

from minillm_distill.builtins.model_families.gpt2 import GPT2Family


class SyntheticFamily(GPT2Family):
    name = "synthetic"
    description = "GPT-2 architecture for the synthetic task: the prompt is the bare instruction (no template)"
    model_types: ClassVar[tuple[str, ...]] = ()

    def format_prompt(self, instruction: str, input: str = "") -> str:
        """The instruction itself (an ``input``, which the task never has, follows it after a space)."""
        return f"{instruction} {input}".strip() if input else instruction
