"""Pair choices (a true response's next output against another mode's output for the same symbol): exact
answers against the world's tables in the default and the varying-length world, and the batched, left-padded
scoring against one unpadded forward pass per choice with a full softmax."""

from __future__ import annotations

import random

import pytest

from minillm_demo.synthetic import make_world, save_tokenizer
from minillm_demo.synthetic.pairs import pair_choices
from minillm_demo.synthetic.task import LENGTHS_WORLD, TaskConfig


@pytest.mark.parametrize("overrides", [{}, LENGTHS_WORLD], ids=["default", "lengths"])
def test_the_valid_word_continues_a_true_response_and_the_hybrid_only_another_mode_has(overrides):
    world = make_world(5, TaskConfig(**overrides))
    rng_prompts = [world.prompt_text(world.random_prompt(random.Random(i))) for i in range(300)]
    pairs = pair_choices(world, rng_prompts, seed=1)
    modes = {w: i for i, w in enumerate(world.mode_words)}
    outputs = {w: i for i, w in enumerate(world.output_words)}
    positions = set()
    for text, pair in zip(rng_prompts, pairs, strict=True):
        prompt = world.parse_prompt(text)
        words = pair.prefix.split()
        mode, done = modes[words[0]], [outputs[w] for w in words[1:]]
        symbols = world.item_symbols(prompt, mode)
        assert len(done) < len(symbols)  # the choice is inside the response, before its EOS
        symbol = symbols[len(done)]
        assert world.mode_probability(prompt.genre, mode) > 0
        assert all(world.output_probability(mode, s, o) > 0 for s, o in zip(symbols, done, strict=False))
        assert world.output_probability(mode, symbol, outputs[pair.valid]) > 0
        assert world.output_probability(mode, symbol, outputs[pair.hybrid]) == 0
        assert world.modes_with_output(symbol, outputs[pair.hybrid])  # another mode's: a hybrid, not noise
        assert pair.instruction == text
        positions.add(len(done))
    assert len(positions) >= 5  # every position of the response is asked about, not only the first
    assert pair_choices(world, rng_prompts, seed=1) == pairs
    assert pair_choices(world, rng_prompts, seed=2) != pairs


def test_batched_pair_probabilities_equal_one_unpadded_forward_each(tmp_path):
    import torch

    from minillm_demo.calibration import evaluate_pairs, pair_probabilities
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    world = make_world(3)
    save_tokenizer(world, tmp_path / "tok")
    loaded = load_model(
        ModelSpec(
            family="synthetic",
            scratch={"layers": 1, "hidden": 16, "heads": 2, "max_positions": 32},
            tokenizer=str(tmp_path / "tok"),
        ),
        seed=3,
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    texts = [world.prompt_text(world.random_prompt(random.Random(i))) for i in range(9)]  # prefixes of 1..5: padding
    pairs = pair_choices(world, texts, seed=4)
    batched = pair_probabilities(model, tokenizer, texts, pairs, batch_size=4)
    for text, pair, row in zip(texts, pairs, batched, strict=True):
        ids = tokenizer(text)["input_ids"] + tokenizer(pair.prefix, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].double(), dim=-1)
        valid, hybrid = (tokenizer.convert_tokens_to_ids(w) for w in (pair.valid, pair.hybrid))
        expected = probs[valid] / (probs[valid] + probs[hybrid])
        assert row[0] == pytest.approx(float(expected), abs=1e-5) and sum(row) == pytest.approx(1.0)
    result = evaluate_pairs(model, tokenizer, world, texts, texts, seed=4)
    assert result.n == 9 and result.accuracy == pytest.approx(sum(r[0] > r[1] for r in batched) / 9)


def test_a_model_that_cannot_tell_the_two_words_apart_is_right_half_the_time(monkeypatch):
    from minillm_demo import calibration

    world = make_world(3)
    texts = [world.prompt_text(world.random_prompt(random.Random(i))) for i in range(8)]
    monkeypatch.setattr(calibration, "pair_probabilities", lambda model, tok, prompts, pairs: [[0.5, 0.5]] * 8)
    result = calibration.evaluate_pairs(None, None, world, texts, texts, seed=0)
    assert result.n == 8 and result.accuracy == 0.5  # a tie is not a right answer every time
    monkeypatch.setattr(calibration, "pair_probabilities", lambda model, tok, prompts, pairs: [[0.9, 0.1]] * 8)
    assert calibration.evaluate_pairs(None, None, world, texts, texts, seed=0).accuracy == 1.0
