"""The synthetic task with a known answer distribution: world, checker, metrics, tokenizer, data files."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest

from minillm_demo.synthetic import (
    EOS,
    Checker,
    Prompt,
    TaskConfig,
    build_tokenizer,
    coverage,
    evaluate,
    is_valid,
    make_world,
    mode_of,
    reference_metrics,
    save_tokenizer,
    validity_rate,
    write_dolly_jsonl,
    write_splits,
)
from minillm_demo.synthetic.checker import (
    EMPTY,
    FORBIDDEN_MODE,
    HYBRID,
    NO_EOS,
    NOT_A_MODE,
    TOO_LONG,
    TOO_SHORT,
    UNKNOWN_WORD,
    WRONG_ITEM,
)

SMALL = TaskConfig(
    n_genres=3, n_modes=4, modes_per_genre=2, n_symbols=5, n_outputs=12, variants=2, min_items=1, max_items=3
)


@pytest.fixture(scope="module")
def world():
    return make_world(7)


@pytest.fixture(scope="module")
def samples(world):
    return world.samples(400, "train", 0)


# -- determinism and splits ----------------------------------------------------------------------------------
def test_world_and_samples_are_deterministic_in_the_seed():
    a, b = make_world(3), make_world(3)
    assert a == b
    assert a.samples(50, "train", 1) == b.samples(50, "train", 1)
    assert a.sample_prompts(20, "test", 0) == b.sample_prompts(20, "test", 0)
    other = make_world(4)
    assert other.tables != a.tables or other.genre_modes != a.genre_modes
    assert a.samples(50, "train", 1) != a.samples(50, "train", 2)


def test_splits_are_disjoint_in_prompts(world):
    by_split = {s: world.sample_prompts(300, s, 0) for s in ("train", "valid", "test")}
    sets = {s: set(map(world.prompt_text, ps)) for s, ps in by_split.items()}
    for s, ps in by_split.items():
        assert len(sets[s]) == len(ps), "prompts within a split are distinct"
        assert all(world.split_of(p) == s for p in ps)
    assert not sets["train"] & sets["valid"]
    assert not sets["train"] & sets["test"]
    assert not sets["valid"] & sets["test"]
    # another sampling seed of the train split never reaches a held-out prompt
    assert not set(map(world.prompt_text, world.sample_prompts(2000, "train", 9))) & (sets["valid"] | sets["test"])
    with pytest.raises(ValueError, match="unknown split"):
        world.sample_prompts(1, "dev", 0)


def test_world_structure(world):
    c = world.config
    for genre in world.genre_modes:
        assert len(genre) == c.modes_per_genre
        assert math.isclose(sum(p for _, p in genre), 1.0)
        assert [p for _, p in genre] == sorted((p for _, p in genre), reverse=True)
        assert genre[0][1] > genre[-1][1], "mode probabilities are not uniform"
    assert {m for genre in world.genre_modes for m, _ in genre} == set(range(c.n_modes))
    for symbol in range(c.n_symbols):
        variants = [{o for o, _ in world.tables[m][symbol]} - {world.shared[symbol]} for m in range(c.n_modes)]
        assert all(len(v) == c.variants for v in variants)
        assert len(set().union(*variants)) == c.n_modes * c.variants, "variants of different modes are disjoint"
        for m in range(c.n_modes):
            assert math.isclose(sum(p for _, p in world.tables[m][symbol]), 1.0)
            assert world.output_probability(m, symbol, world.shared[symbol]) == c.shared_weight


def test_prompts_parse_strictly(world):
    prompt = Prompt(2, (4, 0, 9))
    text = world.prompt_text(prompt)
    assert text == "map g2 : x04 x00 x09 _ _" and world.parse_prompt(text) == prompt
    for bad in (
        "map g2 : x04 x00 x09",
        "map g2 : x04 _ x09 _ _",
        "map g9 : x04 x00 x09 _ _",
        "map g2 : x04 zz _ _ _",
        "say g2 : x04 x00 x09 _ _",
        "map g2 : _ _ _ _ _",
    ):
        with pytest.raises(ValueError):
            world.parse_prompt(bad)
    refs = world.references(text, 5, seed=1)
    assert refs == world.references(prompt, 5, seed=1) and all(world.probability(prompt, r) > 0 for r in refs)
    best = world.most_likely_response(prompt)
    assert world.probability(prompt, best) == max(p for _, p in world.enumerate_responses(prompt))


def test_config_is_validated():
    with pytest.raises(ValueError, match="n_outputs"):
        TaskConfig(n_modes=8, variants=3, n_outputs=20)
    with pytest.raises(ValueError, match="modes_per_genre"):
        TaskConfig(n_modes=2, modes_per_genre=3)
    with pytest.raises(ValueError, match="items"):
        TaskConfig(min_items=4, max_items=3)


# -- generated data and the checker ----------------------------------------------------------------------------
def test_every_generated_response_is_valid(world, samples):
    checker = Checker(world)
    for s in samples:
        assert s.instruction == world.prompt_text(s.prompt)
        assert world.parse_prompt(s.instruction) == s.prompt
        verdict = checker.check(s.instruction, s.response + " " + EOS)
        assert verdict.valid, verdict.reason
        assert verdict.mode == s.mode == checker.mode_of(s.response)
        assert world.probability(s.prompt, s.response) > 0
        assert checker.is_valid(s.prompt, s.response, eos=True)


def _other_mode_variant(world, prompt, mode, symbol):
    for m, _ in world.genre_modes[prompt.genre]:
        if m != mode:
            return next(o for o, _ in world.tables[m][symbol] if o != world.shared[symbol])
    raise AssertionError("genre with one mode")


def test_checker_rejects_hand_made_invalid_responses(world, samples):
    checker = Checker(world)
    s = next(x for x in samples if len(x.prompt.symbols) >= 4)
    prompt, words = s.prompt, s.response.split()
    ok = " ".join(words) + f" {EOS}"
    assert checker.check(prompt, ok).valid

    def kind(response, **kw):
        verdict = checker.check(prompt, response, **kw)
        assert not verdict.valid and verdict.reason
        return verdict.kind

    # a mode hybrid: item 2 taken from another allowed mode of this genre
    hybrid = list(words)
    hybrid[2] = world.output_words[_other_mode_variant(world, prompt, s.mode, prompt.symbols[1])]
    assert kind(" ".join(hybrid) + f" {EOS}") == HYBRID
    assert "hybrid" in checker.check(prompt, " ".join(hybrid) + f" {EOS}").reason
    # an output valid for the symbol in no mode
    valid_anywhere = {o for m in range(world.config.n_modes) for o, _ in world.tables[m][prompt.symbols[0]]}
    wrong = next(o for o in range(world.config.n_outputs) if o not in valid_anywhere)
    assert kind(" ".join([words[0], world.output_words[wrong], *words[2:]]) + f" {EOS}") == WRONG_ITEM
    # lengths, EOS, modes, words
    assert kind(" ".join(words[:-1]) + f" {EOS}") == TOO_SHORT
    assert kind(" ".join([*words, words[-1]]) + f" {EOS}") == TOO_LONG
    assert kind(" ".join(words)) == NO_EOS
    assert kind(" ".join(words) + f" {EOS}", eos=False) == NO_EOS
    forbidden = next(m for m in range(world.config.n_modes) if world.mode_probability(prompt.genre, m) == 0)
    assert kind(" ".join([world.mode_words[forbidden], *words[1:]]) + f" {EOS}") == FORBIDDEN_MODE
    assert kind(" ".join(words[1:]) + f" {EOS}") == NOT_A_MODE
    assert kind(" ".join([words[0], "x00", *words[2:]]) + f" {EOS}") == UNKNOWN_WORD
    assert kind(EOS) == EMPTY
    assert kind("") == EMPTY
    # what follows EOS (padding, junk) is ignored; module-level helpers agree with the class
    assert checker.is_valid(prompt, ok + " <pad> <pad> junk")
    assert is_valid(world, s.instruction, ok) and not is_valid(world, s.instruction, " ".join(hybrid))
    assert mode_of(world, ok) == s.mode and mode_of(world, "y01 y02") is None
    assert world.probability(prompt, " ".join(hybrid)) == 0.0


def test_checker_agrees_with_the_true_probability(world):
    """Random word salads and mutations: valid exactly when the true probability is positive."""
    checker = Checker(world)
    rng = random.Random(0)
    vocab = [*world.mode_words, *world.output_words]
    for prompt in world.sample_prompts(200, "valid", 0):
        gold = world.response_text(world.sample_response(prompt, rng)).split()
        for _ in range(5):
            words = list(gold)
            words[rng.randrange(len(words))] = rng.choice(vocab)
            text = " ".join(words)
            assert checker.is_valid(prompt, text, eos=True) == (world.probability(prompt, text) > 0)


# -- the true distribution --------------------------------------------------------------------------------------
def test_true_distribution_sums_to_one_over_enumerated_responses():
    world = make_world(1, SMALL)
    checker = Checker(world)
    for prompt in [Prompt(g, syms) for g in range(3) for syms in [(0,), (1, 4), (2, 2, 3)]]:
        enumerated = list(world.enumerate_responses(prompt))
        assert len(enumerated) == world.n_valid_responses(prompt) == len({r for r, _ in enumerated})
        assert math.isclose(sum(p for _, p in enumerated), 1.0, abs_tol=1e-12)
        for response, p in enumerated:
            text = world.response_text(response)
            assert math.isclose(world.probability(prompt, text), p)
            assert checker.is_valid(prompt, text, eos=True)
        entropy = -sum(p * math.log(p) for _, p in enumerated)
        assert math.isclose(world.entropy(prompt), entropy)


def test_sampling_follows_the_true_distribution():
    world = make_world(2, SMALL)
    prompt = Prompt(0, (1, 3))
    rng = random.Random(0)
    n = 20000
    counts = Counter(world.sample_response(prompt, rng) for _ in range(n))
    for response, p in world.enumerate_responses(prompt):
        assert abs(counts[response] / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3
    assert sum(counts.values()) == n and set(counts) <= {r for r, _ in world.enumerate_responses(prompt)}


# -- metrics --------------------------------------------------------------------------------------------------
def test_metrics(world):
    prompts = world.sample_prompts(300, "test", 0)
    rng = random.Random(0)
    gold = [world.response_text(world.sample_response(p, rng)) + f" {EOS}" for p in prompts]
    assert validity_rate(world, prompts, gold) == 1.0
    ref = reference_metrics(world, prompts)
    full = evaluate(world, prompts, gold)
    assert full["validity"] == 1.0 and full["finished"] == 1.0 and full["error_hybrid"] == 0.0
    assert 0.5 < full["coverage"] <= 1.0 and abs(full["coverage"] - ref["coverage"]) < 0.1
    assert full["mean_length"] == pytest.approx(sum(len(p.symbols) + 1 for p in prompts) / len(prompts))

    # a mode-seeking model: always the genre's likeliest mode and each symbol's likeliest output
    def greedy(p):
        return world.response_text(world.most_likely_response(p)) + " " + EOS

    seeking = evaluate(world, prompts, [greedy(p) for p in prompts])
    assert seeking["validity"] == 1.0
    assert seeking["coverage"] < full["coverage"] - 0.3
    assert seeking["true_nll"] < full["true_nll"]
    # hybrids lower validity but still use the valid choices they make
    hybrids = []
    for p, text in zip(prompts, gold, strict=True):
        words = text.split()
        mode = world.parse_response(text).mode
        words[1] = world.output_words[_other_mode_variant(world, p, mode, p.symbols[0])]
        hybrids.append(" ".join(words))
    mixed = evaluate(world, prompts, hybrids)
    assert mixed["validity"] == 0.0 and mixed["error_hybrid"] == 1.0
    assert mixed["mode_coverage"] == full["mode_coverage"]
    cov = coverage(world, prompts, gold)
    assert cov.modes_used <= cov.modes_total and cov.items_used <= cov.items_total
    assert coverage(world, prompts, gold, threshold=0.99).modes_total == 0
    with pytest.raises(ValueError, match="prompts but"):
        evaluate(world, prompts, gold[:-1])


def test_dolly_jsonl_is_read_by_the_trainer(tmp_path, world):
    from minillm_distill.data.records import load_records

    samples = world.samples(20, "train", 0)
    path = tmp_path / "train.jsonl"
    assert write_dolly_jsonl(path, samples) == 20
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"instruction": samples[0].instruction, "context": "", "response": samples[0].response}
    records = load_records(str(path))
    assert [(r.instruction, r.response) for r in records] == [(s.instruction, s.response) for s in samples]
    paths = write_splits(world, tmp_path / "data", {"train": 30, "test": 10})
    test_rows = [json.loads(line) for line in paths["test"].read_text().splitlines()]
    assert len(test_rows) == 10 and all(
        world.split_of(world.parse_prompt(r["instruction"])) == "test" for r in test_rows
    )


# -- tokenizer ------------------------------------------------------------------------------------------------
def test_tokenizer_round_trip(tmp_path, world, samples):
    from transformers import AutoTokenizer

    from minillm_distill.model_family import ALPACA_PROMPT

    tok = build_tokenizer(world)
    assert build_tokenizer(make_world(7)).get_vocab() == tok.get_vocab()
    assert len(tok) == len(set(tok.get_vocab().values()))
    assert tok.eos_token == EOS and tok.pad_token_id != tok.eos_token_id
    for s in samples[:50]:
        for text in (s.instruction, s.response, s.response + " " + EOS):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert len(ids) == len(text.split()) and tok.unk_token_id not in ids
            assert tok.decode(ids) == text
        ids = tok(s.response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert tok.decode(ids, skip_special_tokens=True) == s.response
    formatted = ALPACA_PROMPT.format(instruction=samples[0].instruction)
    assert tok.unk_token_id not in tok(formatted)["input_ids"]
    assert tok("zzz", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]

    save_tokenizer(world, tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.eos_token_id == tok.eos_token_id and loaded.pad_token_id == tok.pad_token_id
    text = samples[1].instruction
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
