"""A synthetic instruction task whose answer distribution is known exactly.

The *world* (everything a model must learn) is drawn from a seed:

* ``n_symbols`` input symbols ``x00 x01 ...``, ``n_outputs`` output symbols ``y00 ...``, ``n_modes`` modes
  ``m0 m1 ...`` and ``n_genres`` genres ``g0 g1 ...``.
* Every genre allows ``modes_per_genre`` of the modes, with Zipf-like probabilities in a genre-specific order;
  the other modes are forbidden for that genre.
* Every (mode, input symbol) pair has a small distribution over output symbols: the symbol's *shared* output
  (the same in every mode, probability ``shared_weight``; absent when that is 0) and ``variants`` outputs of
  its own (Zipf-like over the rest of the mass). For one symbol, the variants of different modes are
  disjoint, so an output taken from another mode is invalid: a *mode hybrid*.

A prompt (instruction) is ``map g3 : x05 x17 x02 _ _``: a genre and ``min_items`` .. ``max_items`` input
symbols, padded with ``_`` to ``max_items`` slots (``fixed_slots``). A response is ``m2 y11 y40 y07`` followed
by EOS: first a mode allowed for the genre, chosen with the genre's probabilities, then, for every input
symbol in order, one output drawn from that mode's distribution for it. Its probability is therefore exactly::

    P(response | prompt) = P(mode | genre) * prod_i P(output_i | mode, x_i)

and it is valid iff that is positive and it ends with EOS right after the last item.

Why this shape. Validity needs every item to agree with the mode chosen at the first response token, and the
knowledge that decides it (``n_modes * n_symbols`` small tables, 512 mode-specific outputs by default) is
what a much smaller student learns last: a student that has learned each symbol's outputs but not which mode
they belong to spreads its probability over the outputs of all modes (forward KL fits that mixture) and
writes hybrids. Reverse KL fitted under the same confusion gives the normalised *geometric* mean of the
confused teacher distributions, which is precise only where they share likely outputs: the shared output is
such an output (a safe answer in every mode, like a word common to all registers), so a mode-seeking student
can be precise at the cost of the mode-specific variants (coverage). With ``shared_weight=0`` no output is
safe across modes; in the feasibility measurement reverse KL's precision advantage then shrank (about 10
points with 32 symbols, none with 48).

Lengths. With ``max_arity`` above 1 every mode also has an *arity* (1 .. ``max_arity``, each value given to
as many modes as possible): the number of outputs it writes per input symbol. A response of mode m is then
``m2 y11 y03 y40 y41 y07 y07`` (arity 2: two outputs for each of ``x05 x17 x02``, each drawn independently from
that mode's distribution for the symbol), so its length is ``arity(mode) * n_items`` outputs and the EOS must
come right after the last one: where to stop depends on the mode chosen at the first response token, and a
long response must keep to that mode for all its items. The probability is the same product over the
``arity * n_items`` outputs. ``min_items=2, max_items=6, max_arity=4`` gives responses of 2 to 24 output
symbols (:data:`LENGTHS_WORLD`); the default (``max_arity=1``) is exactly the world without arities.

The fixed slots put input symbol i at the same position in every prompt, so the alignment between an item
and its symbol is not what the models spend their capacity on.

Prompts are assigned to the train / valid / test split by a hash of their text (with the world seed), so the
splits never share a prompt: a test prompt is an unseen combination of genre and symbols.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

PAD = "<pad>"
UNK = "<unk>"
EOS = "<eos>"
SPECIAL_TOKENS = (PAD, UNK, EOS)
VERB = "map"
#: the words of the yes/no questions (:mod:`~minillm_demo.synthetic.choice`, :mod:`~minillm_demo.synthetic.facts`)
CHECK = "check"
ARROW = "=>"
YES = "yes"
NO = "no"
SEP = ":"
BLANK = "_"
SPLITS = ("train", "valid", "test")
LENGTHS_WORLD = {"min_items": 2, "max_items": 6, "max_arity": 4}
"""The :class:`TaskConfig` overrides of the varying-length world (responses of 2 to 24 outputs), as
``minillm demo --set world.min_items=2 --set world.max_items=6 --set world.max_arity=4`` sets them. Chosen
before any comparison from the length grid alone: ``items x arity`` over 2..6 x 1..4 spreads the 20 cells over
2..24 outputs, 4 to 6 cells in each reference-length bucket (:func:`length_buckets`)."""


def response_length_range(config: TaskConfig) -> tuple[int, int]:
    """The fewest and most output symbols of a valid response (mode word and EOS not counted)."""
    return config.min_items, config.max_items * config.max_arity


def response_tokens(config: TaskConfig) -> int:
    """Tokens of the longest valid response: the mode word, its outputs and EOS."""
    return response_length_range(config)[1] + 2


def prompt_tokens(config: TaskConfig) -> int:
    """Words of the longest prompt (``map g : x.. x..`` with ``max_items`` symbols or slots)."""
    return 3 + config.max_items


def length_buckets(config: TaskConfig) -> tuple[tuple[int, int | None], ...]:
    """Reference-length buckets in *output symbols* (words after the mode word), inclusive: ``min_items``-4,
    5-8, 9-12 and 13-longest when responses run from at most 4 to at least 13 outputs (2-4, 5-8, 9-12, 13-24
    in :data:`LENGTHS_WORLD`); otherwise one bucket per length (the default world: 3, 4, 5)."""
    low, high = response_length_range(config)
    if low <= 4 and high >= 13:
        return ((low, 4), (5, 8), (9, 12), (13, high))
    return tuple((n, n) for n in range(low, high + 1))


def zipf_weights(n: int, exponent: float) -> tuple[float, ...]:
    """``n`` probabilities proportional to ``1 / rank ** exponent`` (rank 1 first); uniform for exponent 0."""
    raw = [1.0 / (rank**exponent) for rank in range(1, n + 1)]
    total = sum(raw)
    return tuple(w / total for w in raw)


@dataclass(frozen=True)
class TaskConfig:
    """Sizes of a world. The defaults are the design measured for the offline demo."""

    n_genres: int = 8
    n_modes: int = 8
    modes_per_genre: int = 4
    mode_zipf: float = 1.0
    """Exponent of the Zipf weights of a genre's allowed modes (0: uniform)."""
    n_symbols: int = 32
    n_outputs: int = 48
    variants: int = 2
    """Mode-specific outputs of one (mode, symbol) pair."""
    shared_weight: float = 0.4
    """Probability of a symbol's shared output (valid in every mode); 0 means there is none."""
    variant_zipf: float = 1.0
    min_items: int = 3
    max_items: int = 5
    fixed_slots: bool = True
    """Pad every prompt with ``_`` to ``max_items`` symbols, so input symbol i always sits at the same position
    (its output's position in the response is then a fixed distance away, whatever the prompt's length)."""
    max_arity: int = 1
    """Outputs per input symbol go from 1 to this, one arity per mode (1: one output per symbol in every mode)."""
    valid_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self) -> None:
        checks = [
            (self.n_genres >= 1, "n_genres must be >= 1"),
            (1 <= self.modes_per_genre <= self.n_modes, "modes_per_genre must be between 1 and n_modes"),
            (self.n_symbols >= 1, "n_symbols must be >= 1"),
            (self.variants >= 1, "variants must be >= 1"),
            (0.0 <= self.shared_weight < 1.0, "shared_weight must be in [0, 1)"),
            (self.mode_zipf >= 0 and self.variant_zipf >= 0, "Zipf exponents must be >= 0"),
            (1 <= self.min_items <= self.max_items, "need 1 <= min_items <= max_items"),
            (self.max_arity >= 1, "max_arity must be >= 1"),
            (
                self.valid_fraction >= 0 and self.test_fraction >= 0 and self.valid_fraction + self.test_fraction < 1,
                "valid_fraction + test_fraction must be < 1",
            ),
        ]
        needed = self.n_modes * self.variants + (1 if self.shared_weight > 0 else 0)
        checks.append((self.n_outputs >= needed, f"n_outputs must be >= {needed} (disjoint variants per symbol)"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class Prompt:
    genre: int
    symbols: tuple[int, ...]


@dataclass(frozen=True)
class Response:
    mode: int
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Sample:
    """One prompt with one response drawn from the true distribution (texts without EOS)."""

    prompt: Prompt
    instruction: str
    response: str
    mode: int


def _names(prefix: str, n: int) -> tuple[str, ...]:
    width = len(str(n - 1)) if n > 1 else 1
    return tuple(f"{prefix}{i:0{width}d}" for i in range(n))


@dataclass(frozen=True)
class World:
    """The task's ground truth. Build one with :func:`make_world`; everything here is exact."""

    config: TaskConfig
    seed: int
    genre_modes: tuple[tuple[tuple[int, float], ...], ...]
    """Per genre: its allowed modes with their probabilities, most likely first."""
    tables: tuple[tuple[tuple[tuple[int, float], ...], ...], ...]
    """``tables[mode][symbol]``: the valid outputs with their probabilities, most likely first."""
    shared: tuple[int | None, ...]
    """Per symbol: its output valid in every mode (None when ``shared_weight`` is 0)."""
    arities: tuple[int, ...]
    """Per mode: how many outputs it writes for each input symbol (all 1 when ``max_arity`` is 1)."""
    genre_words: tuple[str, ...] = field(repr=False)
    mode_words: tuple[str, ...] = field(repr=False)
    symbol_words: tuple[str, ...] = field(repr=False)
    output_words: tuple[str, ...] = field(repr=False)

    # -- lookups ---------------------------------------------------------------------------------------
    def mode_probability(self, genre: int, mode: int) -> float:
        return dict(self.genre_modes[genre]).get(mode, 0.0)

    def output_probability(self, mode: int, symbol: int, output: int) -> float:
        return dict(self.tables[mode][symbol]).get(output, 0.0)

    def item_symbols(self, prompt: Prompt, mode: int) -> tuple[int, ...]:
        """The input symbol each output of a ``mode`` response answers, in order: every symbol of the prompt
        repeated ``arities[mode]`` times (so a valid response has exactly this many outputs)."""
        return tuple(s for s in prompt.symbols for _ in range(self.arities[mode]))

    def modes_with_output(self, symbol: int, output: int) -> tuple[int, ...]:
        """The modes in which ``output`` is valid for ``symbol`` (all modes for the shared output)."""
        return tuple(m for m in range(self.config.n_modes) if self.output_probability(m, symbol, output) > 0)

    def words(self) -> tuple[str, ...]:
        """Every word of the task's prompts and responses (no special tokens)."""
        return (VERB, SEP, BLANK, *self.genre_words, *self.symbol_words, *self.mode_words, *self.output_words)

    # -- text ------------------------------------------------------------------------------------------
    def prompt_text(self, prompt: Prompt) -> str:
        words = [self.symbol_words[s] for s in prompt.symbols]
        if self.config.fixed_slots:
            words += [BLANK] * (self.config.max_items - len(words))
        symbols = " ".join(words)
        return f"{VERB} {self.genre_words[prompt.genre]} {SEP} {symbols}"

    def response_text(self, response: Response) -> str:
        return " ".join([self.mode_words[response.mode], *(self.output_words[o] for o in response.outputs)])

    def parse_prompt(self, text: str | Prompt) -> Prompt:
        """The prompt of an instruction string (exactly the format of :meth:`prompt_text`)."""
        if isinstance(text, Prompt):
            return text
        words = text.split()
        genres = {w: i for i, w in enumerate(self.genre_words)}
        symbols = {w: i for i, w in enumerate(self.symbol_words)}
        if len(words) < 4 or words[0] != VERB or words[2] != SEP or words[1] not in genres:
            raise ValueError(f"not a prompt of this task: {text!r}")
        rest = words[3:]
        if self.config.fixed_slots:
            n = rest.index(BLANK) if BLANK in rest else len(rest)
            if len(rest) != self.config.max_items or any(w != BLANK for w in rest[n:]):
                raise ValueError(f"prompt {text!r} does not have {self.config.max_items} slots")
            rest = rest[:n]
        try:
            syms = tuple(symbols[w] for w in rest)
        except KeyError as exc:
            raise ValueError(f"unknown input symbol {exc.args[0]!r} in prompt {text!r}") from None
        if not self.config.min_items <= len(syms) <= self.config.max_items:
            raise ValueError(
                f"prompt {text!r} has {len(syms)} symbols, not {self.config.min_items}..{self.config.max_items}"
            )
        return Prompt(genres[words[1]], syms)

    # -- splits ----------------------------------------------------------------------------------------
    def split_of(self, prompt: Prompt) -> str:
        """``train``, ``valid`` or ``test``: a fixed hash of the prompt text and the world seed."""
        digest = hashlib.blake2b(f"{self.seed}|{self.prompt_text(prompt)}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        if u < self.config.test_fraction:
            return "test"
        if u < self.config.test_fraction + self.config.valid_fraction:
            return "valid"
        return "train"

    # -- sampling --------------------------------------------------------------------------------------
    def random_prompt(self, rng: random.Random) -> Prompt:
        c = self.config
        n = rng.randint(c.min_items, c.max_items)
        return Prompt(rng.randrange(c.n_genres), tuple(rng.randrange(c.n_symbols) for _ in range(n)))

    def sample_prompts(self, n: int, split: str, seed: int, *, unique: bool = True) -> list[Prompt]:
        """``n`` prompts of ``split`` (distinct when ``unique``), deterministic in ``seed``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        rng = random.Random(f"prompts|{self.seed}|{split}|{seed}")
        out: list[Prompt] = []
        seen: set[Prompt] = set()
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 1000 * (n + 10):
                raise ValueError(f"cannot find {n} distinct {split} prompts in this world")
            p = self.random_prompt(rng)
            if self.split_of(p) != split or (unique and p in seen):
                continue
            seen.add(p)
            out.append(p)
        return out

    def references(self, prompt: Prompt | str, n: int, seed: int = 0) -> list[str]:
        """``n`` responses of ``prompt`` drawn from the true distribution (texts without EOS), e.g. as
        references for Rouge-L; deterministic in the prompt, ``seed`` and the world."""
        prompt = self.parse_prompt(prompt)
        rng = random.Random(f"references|{self.seed}|{seed}|{self.prompt_text(prompt)}")
        return [self.response_text(self.sample_response(prompt, rng)) for _ in range(n)]

    def most_likely_response(self, prompt: Prompt | str) -> Response:
        """The response with the highest probability (ties broken by the genre's and the tables' order)."""
        prompt = self.parse_prompt(prompt)

        def best(mode: int, pm: float) -> float:
            return pm * math.prod(self.tables[mode][s][0][1] for s in self.item_symbols(prompt, mode))

        mode = max(self.genre_modes[prompt.genre], key=lambda item: best(*item))[0]
        return Response(mode, tuple(self.tables[mode][s][0][0] for s in self.item_symbols(prompt, mode)))

    def sample_response(self, prompt: Prompt, rng: random.Random) -> Response:
        mode = _draw(self.genre_modes[prompt.genre], rng)
        return Response(mode, tuple(_draw(self.tables[mode][s], rng) for s in self.item_symbols(prompt, mode)))

    def samples(self, n: int, split: str, seed: int, *, unique_prompts: bool = True) -> list[Sample]:
        """``n`` prompt/response pairs of ``split`` drawn from the true distribution."""
        rng = random.Random(f"responses|{self.seed}|{split}|{seed}")
        out = []
        for p in self.sample_prompts(n, split, seed, unique=unique_prompts):
            r = self.sample_response(p, rng)
            out.append(Sample(p, self.prompt_text(p), self.response_text(r), r.mode))
        return out

    # -- the exact distribution ------------------------------------------------------------------------
    def probability(self, prompt: Prompt | str, response: Response | str) -> float:
        """P(response | prompt) under the true distribution; a text response may end with EOS (anything
        after the first EOS is ignored) and is scored as if it did. 0 for anything invalid."""
        prompt = self.parse_prompt(prompt)
        if isinstance(response, str):
            parsed = self.parse_response(response)
            if parsed is None:
                return 0.0
            response = parsed
        if not 0 <= response.mode < len(self.arities):
            return 0.0
        symbols = self.item_symbols(prompt, response.mode)
        if len(response.outputs) != len(symbols):
            return 0.0
        p = self.mode_probability(prompt.genre, response.mode)
        for s, o in zip(symbols, response.outputs, strict=True):
            p *= self.output_probability(response.mode, s, o)
        return p

    def log_probability(self, prompt: Prompt | str, response: Response | str) -> float:
        p = self.probability(prompt, response)
        return math.log(p) if p > 0 else -math.inf

    def parse_response(self, text: str) -> Response | None:
        """The response of a text made of task words (EOS and what follows it ignored); None if it is not
        a mode word followed by output words."""
        words = text.split()
        if EOS in words:
            words = words[: words.index(EOS)]
        modes = {w: i for i, w in enumerate(self.mode_words)}
        outputs = {w: i for i, w in enumerate(self.output_words)}
        if not words or words[0] not in modes or any(w not in outputs for w in words[1:]):
            return None
        return Response(modes[words[0]], tuple(outputs[w] for w in words[1:]))

    def enumerate_responses(self, prompt: Prompt | str) -> Iterator[tuple[Response, float]]:
        """Every valid response of ``prompt`` with its probability (exponential in the prompt length)."""
        prompt = self.parse_prompt(prompt)
        for mode, pm in self.genre_modes[prompt.genre]:
            for combo in itertools.product(*(self.tables[mode][s] for s in self.item_symbols(prompt, mode))):
                p = pm
                for _, po in combo:
                    p *= po
                yield Response(mode, tuple(o for o, _ in combo)), p

    def n_valid_responses(self, prompt: Prompt | str) -> int:
        prompt = self.parse_prompt(prompt)
        return sum(
            math.prod(len(self.tables[m][s]) for s in self.item_symbols(prompt, m))
            for m, _ in self.genre_modes[prompt.genre]
        )

    def entropy(self, prompt: Prompt | str) -> float:
        """Entropy (nats) of the response distribution of ``prompt`` (computed factor by factor)."""
        prompt = self.parse_prompt(prompt)
        h = 0.0
        for mode, pm in self.genre_modes[prompt.genre]:
            h -= pm * math.log(pm)
            h += pm * sum(_entropy(self.tables[mode][s]) for s in self.item_symbols(prompt, mode))
        return h


def _entropy(dist: Sequence[tuple[int, float]]) -> float:
    return -sum(p * math.log(p) for _, p in dist if p > 0)


def _draw(dist: Sequence[tuple[int, float]], rng: random.Random) -> int:
    u = rng.random()
    acc = 0.0
    for value, p in dist:
        acc += p
        if u < acc:
            return value
    return dist[-1][0]


def mode_arities(seed: int, config: TaskConfig) -> tuple[int, ...]:
    """Each mode's arity: 1 .. ``max_arity`` dealt round-robin over the modes, then shuffled with their own
    generator (so the tables of a world do not depend on ``max_arity``, and ``max_arity=1`` is the world
    without arities)."""
    arities = [1 + m % config.max_arity for m in range(config.n_modes)]
    if config.max_arity > 1:
        random.Random(f"arities|{seed}").shuffle(arities)
    return tuple(arities)


def make_world(seed: int = 0, config: TaskConfig | None = None) -> World:
    """The world of ``seed``: genres' mode distributions and the per-mode output tables."""
    c = config or TaskConfig()
    rng = random.Random(f"world|{seed}")
    mode_weights = zipf_weights(c.modes_per_genre, c.mode_zipf)
    # Every mode must be allowed by some genre (when there are enough genres to allow them all).
    for _ in range(1000):
        allowed = [rng.sample(range(c.n_modes), c.modes_per_genre) for _ in range(c.n_genres)]
        if len({m for a in allowed for m in a}) == min(c.n_modes, c.n_genres * c.modes_per_genre):
            break
    genre_modes = tuple(tuple(zip(a, mode_weights, strict=True)) for a in allowed)

    variant_weights = [(1 - c.shared_weight) * w for w in zipf_weights(c.variants, c.variant_zipf)]
    has_shared = c.shared_weight > 0
    shared: list[int | None] = []
    tables: list[list[tuple[tuple[int, float], ...]]] = [[] for _ in range(c.n_modes)]
    for _symbol in range(c.n_symbols):
        picks = rng.sample(range(c.n_outputs), c.n_modes * c.variants + (1 if has_shared else 0))
        common = picks.pop(0) if has_shared else None
        shared.append(common)
        for mode in range(c.n_modes):
            dist = list(zip(picks[mode * c.variants : (mode + 1) * c.variants], variant_weights, strict=True))
            if common is not None:
                dist.append((common, c.shared_weight))
            dist.sort(key=lambda item: -item[1])
            tables[mode].append(tuple(dist))
    return World(
        config=c,
        seed=seed,
        genre_modes=genre_modes,
        tables=tuple(tuple(t) for t in tables),
        shared=tuple(shared),
        arities=mode_arities(seed, c),
        genre_words=_names("g", c.n_genres),
        mode_words=_names("m", c.n_modes),
        symbol_words=_names("x", c.n_symbols),
        output_words=_names("y", c.n_outputs),
    )
