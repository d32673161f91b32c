"""Fact questions of the synthetic task (``check MODE SYMBOL => OUTPUT``): exact labels against the world's
tables, hard negatives, the counts derived from the world's sizes, splits, balance and determinism."""

from __future__ import annotations

import pytest

from minillm_demo.synthetic import make_world
from minillm_demo.synthetic.choice import NO, YES, label_of, max_prompt_words, questions, split_of
from minillm_demo.synthetic.facts import (
    FACT_TEST_FRACTION,
    Fact,
    all_facts,
    fact_samples,
    fact_split,
    fact_text,
    is_fact_text,
    parse_fact,
    split_facts,
)
from minillm_demo.synthetic.task import TaskConfig


@pytest.fixture(scope="module")
def world():
    return make_world(3)


def test_every_fact_is_labelled_by_the_tables_and_every_no_is_another_modes_output(world):
    c = world.config
    yes, no = all_facts(world)
    # per (mode, symbol): its variants and the shared output are valid -> variants + 1 yes facts; the other
    # modes' variants of the symbol (disjoint from this mode's) are the no facts -> (n_modes - 1) * variants
    assert len(yes) == c.n_modes * c.n_symbols * (c.variants + 1)
    assert len(no) == c.n_modes * c.n_symbols * (c.n_modes - 1) * c.variants
    assert len(set(yes)) == len(yes) and not set(yes) & set(no)
    for f in yes:
        assert world.output_probability(f.mode, f.symbol, f.output) > 0
        assert label_of(world, fact_text(world, f)) == YES
    for f in no:
        assert world.output_probability(f.mode, f.symbol, f.output) == 0
        assert world.modes_with_output(f.symbol, f.output)  # valid in some other mode: a hard negative
        assert label_of(world, fact_text(world, f)) == NO


def test_without_a_shared_output_every_yes_fact_is_a_variant():
    world = make_world(3, TaskConfig(shared_weight=0.0))
    c = world.config
    yes, no = all_facts(world)
    assert len(yes) == c.n_modes * c.n_symbols * c.variants
    assert len(no) == c.n_modes * c.n_symbols * (c.n_modes - 1) * c.variants


def test_fact_text_round_trips_and_is_told_apart_from_response_questions(world):
    f = Fact(2, 5, world.tables[2][5][0][0])
    text = fact_text(world, f)
    assert text == f"check {world.mode_words[2]} {world.symbol_words[5]} => {world.output_words[f.output]}"
    assert is_fact_text(world, text) and parse_fact(world, text) == f
    response_question = questions(world, 1, "test", seed=0, question="response")[0].instruction
    assert not is_fact_text(world, response_question)
    for bad in ("check m2 x05 y11", f"check {world.mode_words[2]} zz => {world.output_words[0]}", "map g1 : x01"):
        with pytest.raises(ValueError, match="not a fact question"):
            parse_fact(world, bad)
    assert max_prompt_words(world, "fact") == len(text.split()) == 5


def test_splits_are_by_hash_about_a_quarter_held_out_and_disjoint(world):
    yes, no = all_facts(world)
    by_split = {s: split_facts(world, s) for s in ("train", "valid", "test")}
    assert sum(len(y) + len(n) for y, n in by_split.values()) == len(yes) + len(no)
    held_out = len(by_split["test"][0]) + len(by_split["test"][1])
    # hashed per (symbol, output): 544 pairs of 8 facts each, so the share's std is sqrt(.25 * .75 / 544) = 0.019
    assert abs(held_out / (len(yes) + len(no)) - FACT_TEST_FRACTION) < 0.06
    split_of_pair = {}
    for f in yes + no:  # every mode's question about one (symbol, output) is in one split: no answer leaks
        assert split_of_pair.setdefault((f.symbol, f.output), fact_split(world, f)) == fact_split(world, f)
    assert len(split_of_pair) == 544 and len(set(split_of_pair.values())) == 3
    for split, (y, n) in by_split.items():
        assert all(fact_split(world, f) == split == split_of(world, fact_text(world, f)) for f in y + n)
    assert make_world(4) != world and split_facts(make_world(4), "test")[0] != by_split["test"][0]


def test_held_out_samples_are_distinct_balanced_and_capped_by_the_split(world):
    test_yes, _ = split_facts(world, "test")
    samples = fact_samples(world, 10_000, "test", seed=1, distinct=True)
    assert len(samples) == 2 * len(test_yes)  # every held-out yes fact once, as many no facts
    assert [s.label for s in samples[:4]] == [YES, NO, YES, NO]
    assert len({s.instruction for s in samples}) == len(samples)
    assert all(label_of(world, s.instruction) == s.label and split_of(world, s.instruction) == "test" for s in samples)
    few = fact_samples(world, 7, "test", seed=1, distinct=True)
    assert len(few) == 7 and [s.label for s in few].count(YES) == 4
    assert fact_samples(world, 7, "test", seed=1, distinct=True) == few
    assert fact_samples(world, 7, "test", seed=2, distinct=True) != few


def test_training_records_draw_train_facts_with_replacement(world):
    train_yes, train_no = split_facts(world, "train")
    n = 3 * (len(train_yes) + len(train_no))
    samples = questions(world, n, "train", seed=0, question="fact")
    assert len(samples) == n and [s.label for s in samples].count(YES) == n // 2
    assert all(split_of(world, s.instruction) == "train" for s in samples)
    assert len({s.instruction for s in samples}) < n  # more records than facts: repeats
    with pytest.raises(ValueError, match="unknown choice question"):
        questions(world, 2, "train", seed=0, question="genre")
