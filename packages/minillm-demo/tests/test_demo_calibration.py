"""Choice prompts of the synthetic task (exact labels, balance, splits) and the demo's label-word calibration
(accuracy, ECE and reliability bins against hand-derived values; the batched label probabilities against the
eval's one-forward-per-choice scoring)."""

from __future__ import annotations

import json

import pytest

from minillm_demo.calibration import (
    label_probabilities,
    label_word_metrics,
    pool_bins,
    reliability_bins,
)
from minillm_demo.synthetic import Checker, Prompt, Response, make_world, save_tokenizer, save_world, write_splits
from minillm_demo.synthetic.checker import HYBRID
from minillm_demo.synthetic.choice import (
    LABELS,
    NO,
    WORDS,
    YES,
    choice_samples,
    choice_text,
    label_of,
    max_prompt_words,
    mix_into,
    n_choice_records,
    parse_choice,
    read_choice_spec,
    split_of,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world():
    return make_world(3)


# -- label-word metrics: hand-derived values ------------------------------------------------------------------
# five prompts, label words (yes, no); prediction = argmax, confidence = its probability:
#   0.95 yes, gold yes: right, bin (0.9, 1]      0.85 yes, gold no: wrong, bin (0.8, 0.9]
#   0.72 no,  gold no:  right, bin (0.7, 0.8]    0.55 yes, gold no: wrong, bin (0.5, 0.6]
#   0.88 yes, gold yes: right, bin (0.8, 0.9]
# accuracy 3/5; bin (0.8, 0.9] holds two: accuracy 0.5, confidence 0.865
# ECE = (1 * |1 - 0.95| + 2 * |0.5 - 0.865| + 1 * |1 - 0.72| + 1 * |0 - 0.55|) / 5 = 1.61 / 5 = 0.322
TABLE = [[0.95, 0.05], [0.85, 0.15], [0.28, 0.72], [0.55, 0.45], [0.88, 0.12]]
GOLD = [0, 1, 1, 1, 0]


def test_label_word_accuracy_and_ece_of_a_known_table():
    result = label_word_metrics(TABLE, GOLD)
    assert result.accuracy == pytest.approx(0.6)
    assert result.ece == pytest.approx(0.322)
    assert result.n == 5
    counts = [b["count"] for b in result.bins]
    assert counts == [0, 0, 0, 0, 0, 1, 0, 1, 2, 1]
    assert result.bins[8]["accuracy"] == pytest.approx(0.5) and result.bins[8]["confidence"] == pytest.approx(0.865)
    assert result.bins[5]["accuracy"] == 0.0 and result.bins[0]["accuracy"] is None
    # the bins reproduce the ECE
    assert sum(b["count"] / 5 * abs(b["accuracy"] - b["confidence"]) for b in result.bins if b["count"]) == (
        pytest.approx(0.322)
    )


def test_label_word_metrics_edge_cases():
    perfect = label_word_metrics([[1.0, 0.0], [0.0, 1.0]], [0, 1])
    assert perfect.accuracy == 1.0 and perfect.ece == 0.0
    # a tie predicts the first label word (yes): wrong here, confidence 0.5 in bin (0.4, 0.5]
    tie = label_word_metrics([[0.5, 0.5]], [1])
    assert tie.accuracy == 0.0 and tie.ece == pytest.approx(0.5) and tie.bins[4]["count"] == 1
    # three label words: confidence is the top one's (0.5), correct
    three = label_word_metrics([[0.2, 0.5, 0.3]], [1])
    assert three.accuracy == 1.0 and three.ece == pytest.approx(0.5)
    with pytest.raises(ValueError, match="gold labels"):
        label_word_metrics(TABLE, GOLD[:2])
    with pytest.raises(ValueError, match="not in"):
        reliability_bins([1.5], [True])


def test_pooled_bins_are_count_weighted():
    a = reliability_bins([0.95, 0.91], [True, False])  # bin 9: 2 members, accuracy 0.5, confidence 0.93
    b = reliability_bins([0.99, 0.62], [True, True])  # bin 9: 1 member, accuracy 1, confidence 0.99; bin 6: 1
    pooled = pool_bins([a, b])
    assert pooled[9]["count"] == 3
    assert pooled[9]["accuracy"] == pytest.approx(2 / 3)
    assert pooled[9]["confidence"] == pytest.approx((0.95 + 0.91 + 0.99) / 3)
    assert pooled[6]["count"] == 1 and pooled[6]["accuracy"] == 1.0
    assert pooled[0] == {"lo": 0.0, "hi": 0.1, "count": 0, "accuracy": None, "confidence": None}
    assert pool_bins([]) == []


# -- choice prompts -----------------------------------------------------------------------------------------
def test_constructed_choice_prompts_have_their_exact_label(world):
    genre = 0
    mode = world.genre_modes[genre][0][0]
    symbols = (1, 2, 3)
    best = tuple(world.tables[mode][s][0][0] for s in symbols)
    prompt = Prompt(genre, symbols)
    valid = choice_text(world, prompt, Response(mode, best))
    assert valid.startswith("check " + world.genre_words[genre] + " : ") and " => " in valid
    assert label_of(world, valid) == YES
    # item 2 replaced by an output of symbol 2 that only another mode allows: a hybrid
    other = next(m for m in range(world.config.n_modes) if m != mode)
    foreign = next(o for o, _ in world.tables[other][2] if world.output_probability(mode, 2, o) == 0)
    assert label_of(world, choice_text(world, prompt, Response(mode, (best[0], foreign, best[2])))) == NO
    # a mode the genre forbids, one item too few, one too many
    forbidden = next(m for m in range(world.config.n_modes) if world.mode_probability(genre, m) == 0)
    assert label_of(world, choice_text(world, prompt, Response(forbidden, best))) == NO
    assert label_of(world, choice_text(world, prompt, Response(mode, best[:2]))) == NO
    assert label_of(world, choice_text(world, prompt, Response(mode, (*best, best[0])))) == NO
    # the text round-trips
    assert parse_choice(world, valid) == (prompt, world.response_text(Response(mode, best)))
    with pytest.raises(ValueError, match="not a choice prompt"):
        parse_choice(world, world.prompt_text(prompt))


def test_choice_prompts_of_the_varying_length_world_are_exact_hybrids():
    from minillm_demo.synthetic.task import LENGTHS_WORLD, TaskConfig

    world = make_world(0, TaskConfig(**LENGTHS_WORLD))  # arity > 1: more outputs than input symbols
    samples = choice_samples(world, 200, "test", seed=1)  # its labels are checked against label_of as drawn
    checker = Checker(world)
    for s in samples[1::2]:
        assert s.label == NO and checker.is_valid(s.prompt, f"{world.response_text(s.response)} <eos>") is False
    assert any(len(s.response.outputs) > len(s.prompt.symbols) for s in samples)


def test_choice_samples_are_balanced_exact_distinct_hybrids_of_their_split(world):
    checker = Checker(world)
    samples = choice_samples(world, 41, "test", seed=7)
    assert len(samples) == 41 and len({s.instruction for s in samples}) == 41
    assert [s.label for s in samples].count(YES) == 21 and [s.label for s in samples].count(NO) == 20
    for s in samples:
        assert label_of(world, s.instruction) == s.label
        assert split_of(world, s.instruction) == "test" == world.split_of(s.prompt)
        prompt, response = parse_choice(world, s.instruction)
        verdict = checker.check(prompt, response, eos=True)
        if s.label == NO:
            assert verdict.kind == HYBRID  # only a mode mix makes it wrong
            wrong = [
                i
                for i, (sym, out) in enumerate(zip(prompt.symbols, s.response.outputs, strict=True))
                if world.output_probability(s.response.mode, sym, out) == 0
            ]
            assert len(wrong) == 1
    assert choice_samples(world, 41, "test", seed=7) == samples
    assert choice_samples(world, 10, "test", seed=8) != samples[:10]
    train = {s.instruction for s in choice_samples(world, 200, "train", seed=7)}
    assert not train & {s.instruction for s in samples}
    assert max_prompt_words(world) == 1 + 2 + 5 + 1 + 1 + 5
    with pytest.raises(ValueError, match="unknown split"):
        choice_samples(world, 2, "dev", seed=0)


def test_mixing_choice_prompts_into_the_training_split(tmp_path, world):
    assert n_choice_records(50_000, 0.2) == 10_000 and n_choice_records(10, 0.0) == 0
    with pytest.raises(ValueError):
        n_choice_records(10, 1.0)
    write_splits(world, tmp_path, {"train": 30})
    total = mix_into(tmp_path / "train.jsonl", choice_samples(world, 10, "train", seed=1), seed=1)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert total == 40 == len(rows)
    choices = [r for r in rows if r["instruction"].startswith("check ")]
    assert len(choices) == 10 and {r["response"] for r in choices} == set(LABELS)
    assert all(label_of(world, r["instruction"]) == r["response"] for r in choices)
    assert [i for i, r in enumerate(rows) if r in choices] != list(range(30, 40))  # shuffled in, not appended
    assert read_choice_spec(tmp_path) is None


# -- label probabilities of a model ---------------------------------------------------------------------------
def test_batched_label_probabilities_match_the_eval_scoring(tmp_path, world):
    from minillm_distill.eval.analysis import label_word_probabilities
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    save_tokenizer(world, tmp_path / "tok", WORDS)
    loaded = load_model(
        ModelSpec(
            family="synthetic",
            scratch={"layers": 1, "hidden": 16, "heads": 2, "max_positions": 32},
            tokenizer=str(tmp_path / "tok"),
        ),
        seed=3,
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    prompts = [s.instruction for s in choice_samples(world, 7, "valid", seed=2)]  # 3..5 items: left padding
    assert all(tokenizer.unk_token_id not in tokenizer(p)["input_ids"] for p in prompts)
    batched = label_probabilities(model, tokenizer, prompts, LABELS, batch_size=3)
    for prompt, row in zip(prompts, batched, strict=True):
        one = label_word_probabilities(model, tokenizer, prompt, LABELS, 64)
        assert row == pytest.approx(one, abs=1e-5)
        assert sum(row) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not one known token"):
        label_probabilities(model, tokenizer, prompts, ("yes", "maybe"))


@pytest.mark.parametrize("question", ["response", "fact"])
def test_evaluate_model_reports_label_metrics_when_the_data_has_choices(tmp_path, question):
    from minillm_demo.calibration import evaluate_choices, mix_choice_prompts
    from minillm_demo.config import EvalConfig
    from minillm_demo.evaluate import evaluate_model, load

    world = make_world(4)
    data = tmp_path / "data"
    write_splits(world, data, {"train": 40, "valid": 10, "test": 4})
    save_world(world, data)
    words = mix_choice_prompts(world, data, 10, seed=0, question=question)
    assert words == WORDS and read_choice_spec(data) == {
        "share": 0.2,
        "train_records": 10,
        "question": question,
        "labels": ["yes", "no"],
        "words": list(WORDS),
    }
    save_tokenizer(world, tmp_path / "tokenizer", words)
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    spec = ModelSpec(
        family="synthetic",
        scratch={"layers": 1, "hidden": 16, "heads": 2, "max_positions": 32},
        tokenizer=str(tmp_path / "tokenizer"),
    )
    loaded = load_model(spec, seed=1)
    loaded.model.save_pretrained(tmp_path / "m")
    loaded.tokenizer.save_pretrained(tmp_path / "m")
    cfg = EvalConfig(seeds=(1, 2), prompts=4, batch_size=5, references=1, calibration_prompts=2, choice_prompts=6)
    bins: list = []
    values = evaluate_model(tmp_path / "m", data, cfg, label_bins=bins)
    again = load(str(tmp_path / "m"))
    for i, seed in enumerate(cfg.seeds):
        expected = evaluate_choices(again.model, again.tokenizer, world, 6, seed, question)
        assert values["label_accuracy"][i] == pytest.approx(expected.accuracy)
        assert values["label_ece"][i] == pytest.approx(expected.ece)
        assert sum(b["count"] for b in bins[i]) == 6
    # without choice.json the label metrics are not measured
    (data / "choice.json").unlink()
    plain = evaluate_model(tmp_path / "m", data, cfg)
    assert plain["label_accuracy"] == [None, None] and plain["label_ece"] == [None, None]


# -- report -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_calibration_table_and_figure(tmp_path):
    from rich.console import Console

    from minillm_demo.calibration import (
        calibration_table,
        draw_calibration_figure,
        has_calibration_metrics,
        has_label_metrics,
    )
    from minillm_demo.config import METHODS, default_settings
    from minillm_demo.pipeline import summarise

    results = {
        name: {
            "pair_accuracy": summarise([0.9, 0.7]),
            "pair_ece": summarise([0.2 + 0.01 * i, 0.3]),
            "label_accuracy": summarise([None, None]),
            "label_ece": summarise([None, None]),
            "ece": summarise([0.03, 0.04]),
            "token_accuracy": summarise([50.0, 51.0]),
        }
        for i, name in enumerate(METHODS)
    }
    results["pair_calibration"] = {
        name: {"bins": reliability_bins([0.6, 0.9, 0.97, 0.7], [True, False, True, True]), "seeds": 2}
        for name in METHODS
    }
    results["settings"] = default_settings().as_dict()
    assert has_calibration_metrics(results) and not has_label_metrics(results)
    console = Console(record=True, width=250)
    console.print(calibration_table(results))
    text = console.export_text()
    for word in ("Teacher", "MiniLLM", "Pair ECE", "80.0\u00b114.1", "0.250\u00b10.071", "2 held-out pair choices"):
        assert word in text
    assert "Label ECE" not in text and "yes/no" not in text.split("Pair:")[0]
    assert draw_calibration_figure(results, tmp_path / "pairs.png").read_bytes().startswith(PNG_MAGIC)

    for i, name in enumerate(METHODS):  # a choice_share run: the yes/no columns join the pair ones
        results[name]["label_accuracy"] = summarise([0.8, 0.85])
        results[name]["label_ece"] = summarise([0.05 + 0.01 * i, 0.07])
    assert not has_label_metrics({"teacher": {"label_ece": summarise([None])}})
    assert has_label_metrics(results)
    results["label_calibration"] = {
        name: {"bins": reliability_bins([0.6, 0.9, 0.97], [True, False, True]), "seeds": 1} for name in METHODS
    }
    results["settings"] = {**default_settings().as_dict(), "choice_share": 0.2, "choice_question": "fact"}
    console = Console(record=True, width=250)
    console.print(calibration_table(results))
    text = console.export_text()
    for word in (
        "Pair ECE",
        "Label ECE",
        "82.5\u00b13.5",
        "0.060\u00b10.014",
        "0.085",
        "20%",
        "3 held-out yes/no fact",
    ):
        assert word in text
    out = draw_calibration_figure(results, tmp_path / "calibration.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_choice_share_setting(tmp_path):
    from minillm_demo.config import default_settings
    from minillm_demo.overrides import apply_overrides
    from minillm_distill.errors import UsageError

    s = apply_overrides(default_settings(), ["choice_share=0.2", "eval.choice_prompts=500"])
    assert s.choice_share == 0.2 and s.eval.choice_prompts == 500
    assert default_settings().choice_share == 0.0
    with pytest.raises(UsageError, match="choice_share must be in"):
        apply_overrides(default_settings(), ["choice_share=1"])
    with pytest.raises(UsageError, match="choice_prompts must be at least 2"):
        apply_overrides(default_settings(), ["eval.choice_prompts=1"])


def test_pipeline_collects_label_metrics_and_pools_bins_over_runs(tmp_path):
    from dataclasses import replace

    from minillm_demo.config import EvalConfig, default_settings
    from minillm_demo.pipeline import DemoPaths, collect, collect_label_bins

    settings = replace(
        default_settings(), methods=("kd",), train_runs=2, choice_share=0.2, eval=EvalConfig(seeds=(10, 20))
    )
    paths = DemoPaths(tmp_path)
    confidences = {"teacher": [[0.99, 0.97], [0.95]], "run1/sft": [[0.6]], "run2/sft": [[0.7, 0.55]]}
    confidences.update({"run1/kd": [[0.9]], "run2/kd": [[0.92, 0.81]]})
    for sid, per_seed in confidences.items():
        bins = [reliability_bins(c, [True] * len(c)) for c in per_seed]
        ece = [sum(1 - x for x in c) / len(c) for c in per_seed]
        path = paths.eval_file(sid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"per_seed": {"label_ece": ece}, "label_bins": bins}))
    results = collect(settings, paths)
    assert results["kd"]["label_ece"]["seeds"] == pytest.approx([0.1, (0.08 + 0.19) / 2])
    assert results["teacher"]["label_ece"]["seeds"] == pytest.approx([0.02, 0.05])
    pooled = collect_label_bins(settings, paths)
    assert set(pooled) == {"teacher", "sft", "kd"} and pooled["kd"]["seeds"] == 2
    assert [b["count"] for b in pooled["kd"]["bins"]][8:] == [2, 1]  # 0.81, 0.9 | 0.92
    assert pooled["kd"]["bins"][8]["confidence"] == pytest.approx(0.855)
