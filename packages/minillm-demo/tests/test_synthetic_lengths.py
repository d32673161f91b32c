"""The synthetic world's varying response lengths (per-mode arity): exact probability, checker, coverage and
length buckets, against hand-derived values."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from minillm_demo.synthetic import EOS, Checker, Prompt, Response, TaskConfig, coverage, evaluate, make_world
from minillm_demo.synthetic.checker import HYBRID, NO_EOS, TOO_LONG, TOO_SHORT, WRONG_ITEM
from minillm_demo.synthetic.task import (
    LENGTHS_WORLD,
    length_buckets,
    prompt_tokens,
    response_length_range,
    response_tokens,
)

# every (mode, symbol) has one own variant (p = 0.5) and the shared output (p = 0.5); a genre's 2 modes have
# probabilities 2/3 and 1/3 (Zipf 1); the 4 modes' arities are 1, 1, 2, 2 in some order
HALVES = TaskConfig(
    n_genres=2,
    n_modes=4,
    modes_per_genre=2,
    n_symbols=3,
    n_outputs=8,
    variants=1,
    shared_weight=0.5,
    min_items=1,
    max_items=3,
    max_arity=2,
)


@pytest.fixture(scope="module")
def world():
    return make_world(3, HALVES)


def _mode_of_arity(world, genre: int, arity: int) -> tuple[int, float] | None:
    for mode, pm in world.genre_modes[genre]:
        if world.arities[mode] == arity:
            return mode, pm
    return None


def _genre_with_both(world) -> int:
    for g in range(world.config.n_genres):
        if _mode_of_arity(world, g, 1) and _mode_of_arity(world, g, 2):
            return g
    pytest.skip("no genre allows modes of both arities in this world")


def test_arities_are_dealt_evenly_and_leave_the_rest_of_the_world_unchanged():
    assert sorted(make_world(3, HALVES).arities) == [1, 1, 2, 2]
    lengths = make_world(0, TaskConfig(**LENGTHS_WORLD))
    assert sorted(lengths.arities) == [1, 1, 2, 2, 3, 3, 4, 4]
    plain = make_world(0)
    assert plain.arities == (1,) * 8
    # the tables and the genres' modes do not depend on the arities
    same_items = make_world(0, TaskConfig(min_items=2, max_items=6))
    assert (lengths.tables, lengths.genre_modes, lengths.shared) == (
        same_items.tables,
        same_items.genre_modes,
        same_items.shared,
    )
    assert make_world(0, TaskConfig(**LENGTHS_WORLD)) == lengths  # deterministic
    with pytest.raises(ValueError, match="max_arity"):
        TaskConfig(max_arity=0)


def test_a_response_of_an_arity_2_mode_has_two_outputs_per_symbol(world):
    genre = _genre_with_both(world)
    mode, pm = _mode_of_arity(world, genre, 2)
    prompt = Prompt(genre, (0, 2))
    assert world.item_symbols(prompt, mode) == (0, 0, 2, 2)
    own = [next(o for o, _ in world.tables[mode][s] if o != world.shared[s]) for s in (0, 1, 2)]
    outputs = (own[0], world.shared[0], world.shared[2], own[2])
    text = world.response_text(Response(mode, outputs))
    # four outputs of probability 1/2 each
    assert world.probability(prompt, text) == pytest.approx(pm / 16)
    assert pm == pytest.approx(2 / 3) or pm == pytest.approx(1 / 3)
    checker = Checker(world)
    assert checker.check(prompt, text + " " + EOS).valid
    words = text.split()
    short = " ".join(words[:-1]) + " " + EOS
    long = text + " " + world.output_words[world.shared[2]] + " " + EOS
    assert checker.check(prompt, short).kind == TOO_SHORT and world.probability(prompt, short) == 0
    assert "x 2 outputs each" in checker.check(prompt, short).reason
    assert checker.check(prompt, long).kind == TOO_LONG and world.probability(prompt, long) == 0
    assert checker.check(prompt, text).kind == NO_EOS
    # the second output of symbol 0 taken from another mode: a hybrid, found at item 2
    other = next(m for m in range(4) if m != mode)
    foreign = next(o for o, _ in world.tables[other][0] if o != world.shared[0])
    hybrid = [world.mode_words[mode], world.output_words[own[0]], world.output_words[foreign], *words[3:]]
    verdict = checker.check(prompt, " ".join(hybrid) + " " + EOS)
    assert verdict.kind == HYBRID and verdict.reason.startswith("item 2:")
    # symbol 1's own output in symbol 0's place is valid for no mode of symbol 0 (symbols' outputs differ)
    stray = next(
        o for o in range(world.config.n_outputs) if not world.modes_with_output(0, o) and world.modes_with_output(1, o)
    )
    wrong = [words[0], world.output_words[stray], *words[2:]]
    assert checker.check(prompt, " ".join(wrong) + " " + EOS).kind == WRONG_ITEM


def test_exact_distribution_over_modes_of_different_arities(world):
    genre = _genre_with_both(world)
    prompt = Prompt(genre, (1, 2))
    enumerated = list(world.enumerate_responses(prompt))
    # a mode of arity a has 2 ** (2 a) responses: 4 for arity 1, 16 for arity 2
    assert len(enumerated) == world.n_valid_responses(prompt) == 4 + 16
    assert math.fsum(p for _, p in enumerated) == pytest.approx(1.0, abs=1e-12)
    by_length = Counter()
    for response, p in enumerated:
        by_length[len(response.outputs)] += p
    pm1, pm2 = _mode_of_arity(world, genre, 1)[1], _mode_of_arity(world, genre, 2)[1]
    assert by_length == pytest.approx({2: pm1, 4: pm2})
    # H = H(mode) + sum_m P(m) * (outputs of m) * ln 2
    expected = -(pm1 * math.log(pm1) + pm2 * math.log(pm2)) + (pm1 * 2 + pm2 * 4) * math.log(2)
    assert world.entropy(prompt) == pytest.approx(expected)
    assert world.entropy(prompt) == pytest.approx(-sum(p * math.log(p) for _, p in enumerated))
    # sampling: the share of 4-output responses is P(the arity-2 mode)
    rng = random.Random(0)
    n = 6000
    long = sum(len(world.sample_response(prompt, rng).outputs) == 4 for _ in range(n)) / n
    assert abs(long - pm2) < 4 * math.sqrt(pm2 * (1 - pm2) / n)
    best = world.most_likely_response(prompt)
    assert world.probability(prompt, best) == max(p for _, p in enumerated)


def test_most_likely_response_weighs_the_length(world):
    # in a genre whose likelier mode (2/3) has arity 2 and the other (1/3) arity 1, for 2 symbols:
    # 2/3 * (1/2)^4 = 1/24 < 1/3 * (1/2)^2 = 1/12, so the shorter, less likely mode wins
    for genre, modes in enumerate(world.genre_modes):
        (first, _), (second, _) = modes
        if (world.arities[first], world.arities[second]) == (2, 1):
            best = world.most_likely_response(Prompt(genre, (0, 1)))
            assert best.mode == second and len(best.outputs) == 2
            assert world.probability(Prompt(genre, (0, 1)), best) == pytest.approx(1 / 12)
            return
    pytest.skip("no genre with a likelier arity-2 mode in this world")


def test_coverage_counts_every_output_of_a_symbol(world):
    genre = _genre_with_both(world)
    mode, _ = _mode_of_arity(world, genre, 2)
    prompt = Prompt(genre, (0,))
    own = next(o for o, _ in world.tables[mode][0] if o != world.shared[0])
    text = f"{world.mode_words[mode]} {world.output_words[own]} {world.output_words[world.shared[0]]} {EOS}"
    cov = coverage(world, [prompt], [text])
    # the prompt's valid choices: 2 modes x (own output + shared) for symbol 0; this response uses 2 of the 4
    assert (cov.items_used, cov.items_total) == (2, 4)
    metrics = evaluate(world, [prompt], [text])
    assert metrics["validity"] == 1.0 and metrics["mean_length"] == 3.0


def test_lengths_world_sizes_and_buckets():
    lengths = TaskConfig(**LENGTHS_WORLD)
    assert response_length_range(lengths) == (2, 24)
    assert response_tokens(lengths) == 26 and prompt_tokens(lengths) == 9
    assert length_buckets(lengths) == ((2, 4), (5, 8), (9, 12), (13, 24))
    default = TaskConfig()
    assert response_length_range(default) == (3, 5) and response_tokens(default) == 7
    assert length_buckets(default) == ((3, 3), (4, 4), (5, 5))
    world = make_world(0, lengths)
    checker = Checker(world)
    samples = world.samples(600, "train", 0)
    assert all(checker.is_valid(s.instruction, s.response + " " + EOS) for s in samples)
    counts = {len(s.response.split()) - 1 for s in samples}
    assert min(counts) >= 2 and max(counts) <= 24 and len(counts) >= 10
