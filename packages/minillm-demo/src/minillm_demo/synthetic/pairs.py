"""Pair choices: a two-way choice inside the task's own format, whose correct answer is known exactly.

A pair choice is a task prompt, the start of a response of the true distribution, and two output words for the
next item: the true response's own output there (``valid``, a draw of the true distribution for that mode and
input symbol) and a ``hybrid`` output, valid for that input symbol only in another mode (one the genre allows
when it allows more than one; the rule of :func:`minillm_demo.synthetic.choice.hybrid`)::

    map g3 : x05 x17 x02 _ _    m2 y11 |  y40 (valid) or y33 (another mode's output for x17)

A model's probabilities of the two words as its next token after prompt and prefix, normalised over the two,
are a binary classification with label words (the paper's way of measuring calibration): its prediction is
the more probable word, its confidence that word's normalised probability, and it is right when that is the
valid one. Unlike the yes/no choice prompts this needs no new training data: it asks, in the format every
model was trained on, the question validity depends on (which outputs belong to the mode chosen at the
response's first token), so the teacher has learned it exactly as well as it has learned the task.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from minillm_demo.synthetic.task import World


@dataclass(frozen=True)
class PairChoice:
    instruction: str
    """The task prompt (:meth:`World.prompt_text`)."""
    prefix: str
    """The response so far: its mode word and the outputs before the choice."""
    valid: str
    """The output word valid at the choice (the true response's own)."""
    hybrid: str
    """An output word of the same input symbol that only another mode has."""


def pair_choice(world: World, instruction: str, rng: random.Random) -> PairChoice:
    """One pair choice for ``instruction``: a true response, a uniformly chosen item, its hybrid output."""
    from minillm_demo.synthetic.choice import hybrid

    prompt = world.parse_prompt(instruction)
    response = world.sample_response(prompt, rng)
    swapped = hybrid(world, prompt, response, rng)
    position = next(i for i, (a, b) in enumerate(zip(response.outputs, swapped.outputs, strict=True)) if a != b)
    words = world.response_text(response).split()
    return PairChoice(
        instruction=world.prompt_text(prompt),
        prefix=" ".join(words[: 1 + position]),
        valid=world.output_words[response.outputs[position]],
        hybrid=world.output_words[swapped.outputs[position]],
    )


def pair_choices(world: World, instructions: Sequence[str], seed: int) -> list[PairChoice]:
    """One pair choice per instruction, deterministic in the world, the instructions and ``seed``."""
    rng = random.Random(f"pairs|{world.seed}|{seed}")
    return [pair_choice(world, text, rng) for text in instructions]
