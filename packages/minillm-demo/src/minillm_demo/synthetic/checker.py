"""The exact checker: is a generated response valid for its prompt, and if not, why.

A response is text of space-separated words, as a word-level tokenizer decodes it. Whether generation
stopped at EOS is read from the text (the word ``<eos>``; what follows it, padding included, is ignored) unless
the caller says so with ``eos=True`` / ``eos=False`` (for text decoded with special tokens skipped).

Valid means: a mode word allowed for the prompt's genre, then exactly ``arity(mode)`` outputs per input symbol
(one in the default world), each valid for its symbol *in that mode*, then EOS. Equivalently, the response has
positive probability under the true distribution (:meth:`World.probability`) and is finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from minillm_demo.synthetic.task import EOS, PAD, Prompt, World

# Kinds of error, in the order they are checked (the first one found is reported).
EMPTY = "empty"
NOT_A_MODE = "not_a_mode"
FORBIDDEN_MODE = "forbidden_mode"
UNKNOWN_WORD = "unknown_word"
HYBRID = "hybrid"
WRONG_ITEM = "wrong_item"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
NO_EOS = "no_eos"
ERROR_KINDS = (EMPTY, NOT_A_MODE, FORBIDDEN_MODE, UNKNOWN_WORD, HYBRID, WRONG_ITEM, TOO_SHORT, TOO_LONG, NO_EOS)


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str
    """Empty when valid, else one sentence naming the first error."""
    kind: str = ""
    """One of ``ERROR_KINDS`` when invalid, else empty."""
    mode: int | None = None
    """The mode the response chose (its first word), when that is a mode word."""

    def __bool__(self) -> bool:
        return self.valid


def response_words(response: str, eos: bool | None = None) -> tuple[list[str], bool]:
    """The words before the first EOS (padding dropped) and whether the response is finished."""
    words = [w for w in response.split() if w != PAD]
    if EOS in words:
        cut = words.index(EOS)
        return words[:cut], True if eos is None else eos
    return words, bool(eos)


class Checker:
    """Exact validity of responses in one world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._modes = {w: i for i, w in enumerate(world.mode_words)}
        self._outputs = {w: i for i, w in enumerate(world.output_words)}

    def mode_of(self, response: str) -> int | None:
        """The mode chosen by ``response`` (its first word), or None when that is not a mode word."""
        words, _ = response_words(response)
        return self._modes.get(words[0]) if words else None

    def is_valid(self, prompt: Prompt | str, response: str, eos: bool | None = None) -> bool:
        return self.check(prompt, response, eos).valid

    def check(self, prompt: Prompt | str, response: str, eos: bool | None = None) -> Verdict:
        world = self.world
        prompt = world.parse_prompt(prompt)
        words, finished = response_words(response, eos)
        if not words:
            return Verdict(False, "empty response", EMPTY)
        mode = self._modes.get(words[0])
        if mode is None:
            return Verdict(False, f"first word {words[0]!r} is not a mode", NOT_A_MODE)
        mode_word = world.mode_words[mode]
        genre_word = world.genre_words[prompt.genre]
        if world.mode_probability(prompt.genre, mode) <= 0:
            return Verdict(False, f"mode {mode_word} is not allowed for genre {genre_word}", FORBIDDEN_MODE, mode)
        items = words[1:]
        symbols = world.item_symbols(prompt, mode)
        for i, (word, symbol) in enumerate(zip(items, symbols, strict=False), start=1):
            output = self._outputs.get(word)
            symbol_word = world.symbol_words[symbol]
            if output is None:
                return Verdict(False, f"item {i}: {word!r} is not an output word", UNKNOWN_WORD, mode)
            if world.output_probability(mode, symbol, output) > 0:
                continue
            owners = world.modes_with_output(symbol, output)
            if owners:
                names = " ".join(world.mode_words[m] for m in owners)
                return Verdict(
                    False,
                    f"item {i}: {word} is valid for {symbol_word} in mode {names}, not in {mode_word} (a mode hybrid)",
                    HYBRID,
                    mode,
                )
            return Verdict(False, f"item {i}: {word} is not valid for {symbol_word} in any mode", WRONG_ITEM, mode)
        if len(items) != len(symbols):
            arity = world.arities[mode]
            per = f" x {arity} outputs each in mode {mode_word}" if arity > 1 else ""
            message = f"{len(items)} items for {len(prompt.symbols)} input symbols{per}"
            return Verdict(False, message, TOO_SHORT if len(items) < len(symbols) else TOO_LONG, mode)
        if not finished:
            return Verdict(False, "no EOS at the end (unfinished)", NO_EOS, mode)
        return Verdict(True, "", "", mode)


def is_valid(world: World, prompt: Prompt | str, response: str, eos: bool | None = None) -> bool:
    return Checker(world).is_valid(prompt, response, eos)


def check(world: World, prompt: Prompt | str, response: str, eos: bool | None = None) -> Verdict:
    return Checker(world).check(prompt, response, eos)


def mode_of(world: World, response: str) -> int | None:
    return Checker(world).mode_of(response)
