"""Fact questions: the single-fact choice prompts of the synthetic task (``choice_question: fact``).

A fact question asks whether one output is valid for one input symbol in one mode::

    check m2 x05 => y11        ->  yes | no

``yes`` when ``y11`` is in mode ``m2``'s distribution for ``x05`` (a mode-specific variant or the symbol's
shared output); ``no`` questions are *hard*: their output is valid for that symbol in another mode, never a
random output, so telling them apart needs the mode-membership knowledge validity needs (the knowledge the
whole-response question of :mod:`minillm_demo.synthetic.choice` asks for 3 to 5 times over at once).

The questions are a finite set, drawn from the world's tables: every (mode, symbol, output) with the output
valid for the symbol in some mode. Each belongs to a split by a hash of its (symbol, output) pair and the
world seed (:func:`fact_split`: :data:`FACT_TEST_FRACTION` test, :data:`FACT_VALID_FRACTION` valid, the rest
train), so a held-out fact question asks about a pair no choice record asked about under any mode; the model
can know it only from the generation data, where every fact occurs. Training records draw train-split facts
with replacement (there are fewer facts than records); an evaluation draws distinct held-out facts, balanced
(:func:`fact_samples`).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from minillm_demo.synthetic.task import ARROW, CHECK, NO, SPLITS, YES, World

FACT_TEST_FRACTION = 0.25
"""Share of the fact questions held out for evaluation (fixed before any model was trained on them: a quarter
leaves about 190 held-out ``yes`` facts in the default world, enough for a balanced set of about 380)."""
FACT_VALID_FRACTION = 0.05


@dataclass(frozen=True)
class Fact:
    mode: int
    symbol: int
    output: int


@dataclass(frozen=True)
class FactSample:
    fact: Fact
    instruction: str
    """The question's text (:func:`fact_text`)."""
    label: str


def fact_text(world: World, fact: Fact) -> str:

    m, s, o = world.mode_words[fact.mode], world.symbol_words[fact.symbol], world.output_words[fact.output]
    return f"{CHECK} {m} {s} {ARROW} {o}"


def is_fact_text(world: World, text: str) -> bool:
    """Whether ``text`` has the shape of a fact question (``check MODE SYMBOL => OUTPUT``)."""

    words = text.split()
    return len(words) == 5 and words[0] == CHECK and words[3] == ARROW and words[1] in world.mode_words


def parse_fact(world: World, text: str) -> Fact:
    """The fact a fact question asks about; ValueError when ``text`` is not one of this world's."""
    words = text.split()
    if not is_fact_text(world, text) or words[2] not in world.symbol_words or words[4] not in world.output_words:
        raise ValueError(f"not a fact question of this world: {text!r} (expected 'check MODE SYMBOL => OUTPUT')")
    return Fact(
        world.mode_words.index(words[1]), world.symbol_words.index(words[2]), world.output_words.index(words[4])
    )


def fact_label(world: World, fact: Fact) -> str:

    return YES if world.output_probability(fact.mode, fact.symbol, fact.output) > 0 else NO


def fact_split(world: World, fact: Fact) -> str:
    """``train``, ``valid`` or ``test``: a fixed hash of the fact's symbol and output and the world seed, not
    of its mode, so every mode's question about one (symbol, output) lands in the same split. (Hashing the
    whole text leaked held-out answers: a mode-specific output is valid in exactly one mode, so a training
    record "m3 x05 => y11: yes" settles every other mode's question about x05 and y11 as "no".)"""
    key = f"{world.symbol_words[fact.symbol]} {world.output_words[fact.output]}"
    digest = hashlib.blake2b(f"fact|{world.seed}|{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < FACT_TEST_FRACTION:
        return "test"
    return "valid" if u < FACT_TEST_FRACTION + FACT_VALID_FRACTION else "train"


def all_facts(world: World) -> tuple[list[Fact], list[Fact]]:
    """(``yes`` facts, ``no`` facts) of the world, in a fixed order: every output valid for a symbol in some
    mode, asked under every mode; ``yes`` where it is valid in that mode, ``no`` where it is not."""
    c = world.config
    yes: list[Fact] = []
    no: list[Fact] = []
    for symbol in range(c.n_symbols):
        outputs = sorted({o for mode in range(c.n_modes) for o, _ in world.tables[mode][symbol]})
        for mode in range(c.n_modes):
            for output in outputs:
                fact = Fact(mode, symbol, output)
                (yes if world.output_probability(mode, symbol, output) > 0 else no).append(fact)
    return yes, no


def split_facts(world: World, split: str) -> tuple[list[Fact], list[Fact]]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    yes, no = all_facts(world)
    return [f for f in yes if fact_split(world, f) == split], [f for f in no if fact_split(world, f) == split]


def fact_samples(world: World, n: int, split: str, seed: int, *, distinct: bool) -> list[FactSample]:
    """Fact questions of ``split``, labels alternating ``yes``, ``no``, deterministic in the world,
    ``split`` and ``seed``. ``distinct``: each fact at most once, so at most twice the split's ``yes`` facts
    (fewer than ``n`` when the split has fewer); otherwise exactly ``n``, drawn with replacement."""

    yes, no = split_facts(world, split)
    if not yes or not no:
        raise ValueError(f"the {split} split of this world has no {'yes' if not yes else 'no'} fact questions")
    rng = random.Random(f"facts|{world.seed}|{split}|{seed}")
    if distinct:
        k = min((n + 1) // 2, len(yes), len(no))
        picked_yes, picked_no = rng.sample(yes, k), rng.sample(no, k)
        facts = [f for duo in zip(picked_yes, picked_no, strict=True) for f in duo][:n]
    else:
        facts = [rng.choice(yes) if i % 2 == 0 else rng.choice(no) for i in range(n)]
    out = [FactSample(f, fact_text(world, f), YES if i % 2 == 0 else NO) for i, f in enumerate(facts)]
    for s in out:
        if fact_label(world, s.fact) != s.label:  # pragma: no cover - a bug in all_facts
            raise AssertionError(f"fact question {s.instruction!r} was drawn as {s.label!r}")
    return out
