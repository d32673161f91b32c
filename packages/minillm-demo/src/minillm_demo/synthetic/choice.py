"""Choice prompts: yes/no questions about the synthetic task whose correct label is known exactly.

A choice prompt asks whether a response is valid for a prompt::

    check g3 : x05 x17 x02 _ _ => m2 y11 y40 y07

It is the task prompt (:meth:`World.prompt_text`) with its verb replaced by ``check``, then ``=>`` and a
response (without EOS). The answer (the record's response) is one label word, ``yes`` when the exact checker
accepts the response as a finished answer to the prompt, else ``no``; the label is therefore a deterministic
function of the prompt text (:func:`label_of`), and a model's label-word probabilities can be scored for
accuracy and calibration the way the MiniLLM paper scores classification (ECE over the label words'
probabilities).

How a set of choice prompts is drawn (:func:`choice_samples`): task prompts of the split, each with one
response of the true distribution; exactly half of them (alternately) keep it (label ``yes``), the other half
get a *hybrid*: one item, at a uniformly chosen position, replaced by an output that is valid for that input
symbol in another mode the prompt's genre allows (any other mode when the genre allows only one), so the
response is invalid only because it mixes two modes. That is the error the demo's students make most, and
telling it apart needs the knowledge of which mode each output belongs to, the same knowledge validity needs.

Splits: a choice prompt belongs to the split of its task prompt (:meth:`World.split_of`, the same hash), so a
held-out choice prompt asks about a task prompt no training record contains, choice or not.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from minillm_demo.synthetic.checker import Checker
from minillm_demo.synthetic.task import ARROW, CHECK, EOS, NO, SPLITS, VERB, YES, Prompt, Response, World

LABELS = (YES, NO)
"""The label words, in the order their probabilities are reported."""
WORDS = (CHECK, ARROW, YES, NO)
"""The words choice prompts add to the task's vocabulary."""
QUESTIONS = ("response", "fact")
"""The kinds of choice prompt: ``response`` (is this whole response valid for this prompt?, this module) and
``fact`` (is this output valid for this symbol in this mode?, :mod:`minillm_demo.synthetic.facts`)."""
CHOICE_FILE = "choice.json"
"""Written beside the data splits when the training split holds choice prompts (:func:`write_choice_spec`)."""


class Labelled(Protocol):
    """A choice prompt of either kind: its text and its exact label."""

    @property
    def instruction(self) -> str: ...

    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class ChoiceSample:
    prompt: Prompt
    response: Response
    instruction: str
    """The choice prompt's text."""
    label: str
    """``yes`` or ``no``: whether ``response`` is a valid answer to ``prompt``."""


def choice_text(world: World, prompt: Prompt, response: Response | str) -> str:
    """``check ... => RESPONSE``: the task prompt with its verb replaced by ``check``, then the response."""
    words = world.prompt_text(prompt).split()
    text = response if isinstance(response, str) else world.response_text(response)
    return " ".join([CHECK, *words[1:], ARROW, text])


def parse_choice(world: World, text: str) -> tuple[Prompt, str]:
    """(the task prompt, the response text) of a choice prompt; ValueError when ``text`` is not one."""
    words = text.split()
    if not words or words[0] != CHECK or ARROW not in words:
        raise ValueError(f"not a choice prompt: {text!r} (expected '{CHECK} ... {ARROW} RESPONSE')")
    cut = words.index(ARROW)
    return world.parse_prompt(" ".join([VERB, *words[1:cut]])), " ".join(words[cut + 1 :])


def label_of(world: World, text: str, checker: Checker | None = None) -> str:
    """The exact label of a choice prompt: ``yes`` when its response is a valid, finished answer (of a fact
    question, :mod:`~minillm_demo.synthetic.facts`: when its output is valid for the symbol in the mode)."""
    from minillm_demo.synthetic.facts import fact_label, is_fact_text, parse_fact

    if is_fact_text(world, text):
        return fact_label(world, parse_fact(world, text))
    prompt, response = parse_choice(world, text)
    return YES if (checker or Checker(world)).is_valid(prompt, f"{response} {EOS}") else NO


def split_of(world: World, text: str) -> str:
    """The split of a choice prompt: that of its task prompt (of a fact question: its own, by hash)."""
    from minillm_demo.synthetic.facts import fact_split, is_fact_text, parse_fact

    if is_fact_text(world, text):
        return fact_split(world, parse_fact(world, text))
    return world.split_of(parse_choice(world, text)[0])


def hybrid(world: World, prompt: Prompt, response: Response, rng: random.Random) -> Response:
    """``response`` with one item replaced by an output of the same input symbol valid only in another mode
    (one the genre allows, when it allows more than one): a mode hybrid."""
    allowed = [m for m, _ in world.genre_modes[prompt.genre] if m != response.mode]
    others = allowed or [m for m in range(world.config.n_modes) if m != response.mode]
    position = rng.randrange(len(response.outputs))
    symbol = world.item_symbols(prompt, response.mode)[position]  # with arities, an output per symbol per copy
    candidates = sorted(
        {
            output
            for mode in others
            for output, _ in world.tables[mode][symbol]
            if world.output_probability(response.mode, symbol, output) == 0
        }
    )
    if not candidates:  # pragma: no cover - TaskConfig keeps the modes' variants disjoint
        raise ValueError(f"no output of another mode for symbol {world.symbol_words[symbol]}")
    outputs = list(response.outputs)
    outputs[position] = rng.choice(candidates)
    return Response(response.mode, tuple(outputs))


def choice_samples(world: World, n: int, split: str, seed: int) -> list[ChoiceSample]:
    """``n`` distinct choice prompts of ``split``, labels alternating ``yes``, ``no`` (so exactly balanced),
    deterministic in the world, ``split`` and ``seed``. Every label is checked against :func:`label_of`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = random.Random(f"choice|{world.seed}|{split}|{seed}")
    checker = Checker(world)
    out: list[ChoiceSample] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 1000 * (n + 10):
            raise ValueError(f"cannot find {n} distinct {split} choice prompts in this world")
        prompt = world.random_prompt(rng)
        if world.split_of(prompt) != split:
            continue
        response = world.sample_response(prompt, rng)
        want = LABELS[len(out) % 2]
        if want == NO:
            response = hybrid(world, prompt, response, rng)
        text = choice_text(world, prompt, response)
        if text in seen:
            continue
        label = label_of(world, text, checker)
        if label != want:  # pragma: no cover - a bug in hybrid() or the checker
            raise AssertionError(f"choice prompt {text!r} was built as {want!r} but its label is {label!r}")
        seen.add(text)
        out.append(ChoiceSample(prompt, response, text, label))
    return out


def questions(world: World, n: int, split: str, seed: int, question: str = "response") -> list[Labelled]:
    """``n`` choice prompts of ``split`` of the kind ``question`` (:data:`QUESTIONS`), labels balanced:
    :func:`choice_samples` for ``response``; for ``fact``, :func:`~minillm_demo.synthetic.facts.fact_samples`
    (drawn with replacement for ``train``, whose records outnumber the facts; distinct elsewhere, so at most
    twice the split's ``yes`` facts)."""
    if question == "response":
        return list(choice_samples(world, n, split, seed))
    if question == "fact":
        from minillm_demo.synthetic.facts import fact_samples

        return list(fact_samples(world, n, split, seed, distinct=split != "train"))
    raise ValueError(f"unknown choice question {question!r}; expected one of {QUESTIONS}")


def max_prompt_words(world: World, question: str = "response") -> int:
    """Words in the longest choice prompt of ``world``: for ``response``, its longest task prompt, ``=>`` and
    the longest valid response; a fact question has 5."""
    if question == "fact":
        return 5
    longest = Prompt(0, (0,) * world.config.max_items)
    return len(choice_text(world, longest, world.most_likely_response(longest)).split())


# -- data files ---------------------------------------------------------------------------------------------
def mix_into(path: str | Path, samples: Iterable[Labelled], *, seed: int) -> int:
    """Add ``samples`` as Dolly records (instruction, empty context, the label as the response) to the JSONL
    file ``path`` and shuffle all its lines (deterministic in ``seed``); returns the number of records."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    lines += [json.dumps({"instruction": s.instruction, "context": "", "response": s.label}) for s in samples]
    random.Random(f"choice-mix|{seed}").shuffle(lines)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def n_choice_records(total: int, share: float) -> int:
    """How many of ``total`` training records are choice prompts at ``share`` (rounded to the nearest)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the share of choice prompts must be in [0, 1), got {share}")
    return round(total * share)


def write_choice_spec(directory: str | Path, *, share: float, train_records: int, question: str = "response") -> Path:
    """``DIR/choice.json``: that the training split holds choice prompts, how many, of which kind
    (:data:`QUESTIONS`), and the label words."""
    path = Path(directory) / CHOICE_FILE
    spec = {
        "share": share,
        "train_records": train_records,
        "question": question,
        "labels": list(LABELS),
        "words": list(WORDS),
    }
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return path


def read_choice_spec(directory: str | Path) -> dict | None:
    """The ``choice.json`` of a data folder, or None when its training split has no choice prompts."""
    path = Path(directory) / CHOICE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
