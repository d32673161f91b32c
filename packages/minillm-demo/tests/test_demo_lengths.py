"""The demo's length report (buckets, ExAccErr by length, runs needed) and its settings for the varying-length
world, against hand-derived values (fast: no model is trained)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from minillm_demo.lengths import (
    bucket_of,
    bucket_scores,
    compare,
    curve_scores,
    length_report,
    output_count,
    runs_to_resolve,
)

BUCKETS = ((2, 4), (5, 8), (9, 12), (13, 24))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_buckets_of_reference_lengths():
    assert output_count("m3 y01 y02 y03") == 3 and output_count("m3") == 0 and output_count("") == 0
    assert [bucket_of(n, BUCKETS) for n in (1, 2, 4, 5, 8, 9, 12, 13, 24, 25)] == [
        None,
        "2-4",
        "2-4",
        "5-8",
        "5-8",
        "9-12",
        "9-12",
        "13-24",
        "13-24",
        None,
    ]
    assert bucket_of(40, ((0, 4), (5, None))) == "5+"


def test_bucket_scores_by_hand():
    # six prompts: lengths 3, 4 (bucket 2-4), 6 (5-8), 20, 13, 24 (13-24); nothing in 9-12
    scores = bucket_scores(
        BUCKETS,
        [3, 4, 6, 20, 13, 24],
        [True, False, True, True, False, False],
        [50.0, 30.0, 80.0, 10.0, 20.0, 60.0],
    )
    assert scores["share@2-4"] == pytest.approx(2 / 6)
    assert scores["validity@2-4"] == 0.5 and scores["rouge_l@2-4"] == 40.0
    assert (scores["share@5-8"], scores["validity@5-8"], scores["rouge_l@5-8"]) == (pytest.approx(1 / 6), 1.0, 80.0)
    assert scores["share@9-12"] == 0 and scores["validity@9-12"] is None and scores["rouge_l@9-12"] is None
    assert scores["validity@13-24"] == pytest.approx(1 / 3) and scores["rouge_l@13-24"] == pytest.approx(30.0)
    with pytest.raises(ValueError, match="lengths"):
        bucket_scores(BUCKETS, [3], [True, False], [1.0])


def test_curve_scores_fill_every_length():
    assert curve_scores([1, 2, 4], [0.0, 5.0, 12.5], 5) == {
        "exaccerr@1": 0.0,
        "exaccerr@2": 5.0,
        "exaccerr@3": None,
        "exaccerr@4": 12.5,
        "exaccerr@5": None,
    }
    assert curve_scores([], [], 2) == {"exaccerr@1": None, "exaccerr@2": None}


def test_runs_to_resolve_and_compare_by_hand():
    # a: mean 2, var 4; b: mean 1, var 1; d = 1: 4 * (4 + 1) / 1 = 20 runs a side
    a, b = [0.0, 2.0, 4.0], [0.0, 1.0, 2.0]
    assert runs_to_resolve(a, b) == 20
    c = compare(a, b)
    assert c["diff"] == 1.0 and c["se"] == pytest.approx(math.sqrt(4 / 3 + 1 / 3)) and not c["resolved"]
    assert c["runs"] == 3 and c["runs_needed"] == 20
    # a clear gap: d = 10, var 1 and 0: 4 * 1 / 100 rounds up to 1, at least 2
    assert runs_to_resolve([9.0, 10.0, 11.0], [0.0, 0.0, 0.0]) == 2
    assert compare([9.0, 10.0, 11.0], [0.0, 0.0, 0.0])["resolved"]
    assert runs_to_resolve([1.0], [2.0, 3.0]) is None and runs_to_resolve([1.0, 1.0], [1.0, 1.0]) is None


def _entry(values):
    from minillm_demo.pipeline import summarise

    return summarise(values)


def _results():
    from minillm_demo.config import METHODS, default_settings

    results = {}
    for i, name in enumerate(METHODS):
        results[name] = {
            "rouge_l@2-4": _entry([40.0 + i, 41.0 + i]),
            "rouge_l@13-24": _entry([30.0 + 2 * i, 33.0 + 2 * i]),
            "validity@2-4": _entry([0.5, 0.6]),
            "share@2-4": _entry([0.25, 0.25]),
            "exaccerr@3": _entry([None, None] if name == "teacher" else [float(i), float(i) + 1]),
            "validity": _entry([0.5, 0.5]),
        }
    results["true_distribution"] = {"rouge_l@2-4": _entry([60.0, 61.0]), "validity@2-4": _entry([1.0, 1.0])}
    settings = replace(default_settings(), world={"min_items": 2, "max_items": 6, "max_arity": 4})
    results["settings"] = {**settings.as_dict(), "world": {"min_items": 2, "max_items": 6, "max_arity": 4}}
    return results


def test_length_report_compares_minillm_with_every_other_student():
    from minillm_demo.config import METHODS

    report = length_report(_results(), METHODS)
    assert list(report["metrics"]) == [
        "exaccerr@3",
        "rouge_l@2-4",
        "rouge_l@13-24",
        "share@2-4",
        "validity@2-4",
    ]
    assert report["metrics"]["rouge_l@2-4"]["kd"] == {"mean": 42.5, "std": pytest.approx(math.sqrt(0.5))}
    # MiniLLM is METHODS[5]: 13-24 bucket 40 / 43 against KD's (index 2) 34 / 37: diff 6, var 4.5 each side
    kd = report["comparisons"]["rouge_l@13-24"]["kd"]
    assert kd["diff"] == pytest.approx(6.0) and kd["se"] == pytest.approx(math.sqrt(4.5 / 2 + 4.5 / 2))
    assert kd["runs_needed"] == math.ceil(4 * 9 / 36) + 1  # 1 -> at least 2
    assert set(report["comparisons"]["rouge_l@13-24"]) == {"sft", "kd", "seqkd", "gkd"}  # not the teacher
    assert "share@2-4" not in report["comparisons"]
    assert report["comparisons"]["exaccerr@3"]["sft"]["diff"] == pytest.approx(4.0)
    assert length_report({"kd": _results()["kd"]}, METHODS)["comparisons"] == {}


@pytest.mark.slow
def test_lengths_table_and_figure(tmp_path):
    from rich.console import Console

    from minillm_demo.lengths_figure import draw_lengths_figure
    from minillm_demo.report import lengths_table, print_lengths_table

    results = _results()
    console = Console(record=True, width=200)
    print_lengths_table(results, console)
    text = console.export_text()
    for word in ("2-4", "13-24", "MiniLLM", "True dist.", "45.5\u00b10.7 / 55.0\u00b17.1", "2-4 25\u00b10%"):
        assert word in text, word
    assert lengths_table({"kd": {"validity": _entry([1.0])}}) is None
    out = draw_lengths_figure(results, tmp_path / "lengths.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_settings_follow_the_world():
    from minillm_demo.config import default_settings, quick_settings
    from minillm_demo.overrides import apply_overrides
    from minillm_distill.errors import UsageError

    default = default_settings()
    assert (default.response_budget(), default.positions()) == (12, 32)
    assert (default.eval_config().max_new_tokens, default.eval_config().exposure_length) == (12, 5)
    assert default.as_dict()["eval"]["max_new_tokens"] == 12 and default.eval.max_new_tokens == 0
    assert quick_settings().eval_config().max_new_tokens == 12
    lengths = apply_overrides(default, ["world.min_items=2", "world.max_items=6", "world.max_arity=4"])
    # longest response: mode + 24 outputs + EOS = 26 tokens, + 5; 16 prompt tokens + 31 = 47 -> 48 positions
    assert (lengths.response_budget(), lengths.positions()) == (31, 48)
    assert (lengths.eval_config().max_new_tokens, lengths.eval_config().exposure_length) == (31, 4)
    explicit = apply_overrides(lengths, ["eval.max_new_tokens=40", "eval.exposure_length=10"])
    assert (explicit.eval_config().max_new_tokens, explicit.eval_config().exposure_length) == (40, 10)
    assert lengths.teacher.parameters(127, 48) - lengths.teacher.parameters(127, 32) == 16 * 128
    with pytest.raises(UsageError, match="max_arity"):
        apply_overrides(default, ["world.max_arity=0"])


def test_recipes_of_the_lengths_world_fit_the_models(tmp_path):
    from minillm_demo.config import default_settings
    from minillm_demo.overrides import apply_overrides
    from minillm_demo.recipes import build_recipes
    from minillm_distill.recipe.loader import validate_recipe_dict

    (tmp_path / "train.jsonl").write_text('{"instruction": "a", "response": "b"}\n')
    settings = apply_overrides(default_settings(), ["world.min_items=2", "world.max_items=6", "world.max_arity=4"])
    recipes = build_recipes(settings, tmp_path, tmp_path / "tok", tmp_path / "runs")
    for name, raw in recipes.items():
        r = validate_recipe_dict(raw)
        assert (r.data.max_prompt_length, r.data.max_response_length) == (16, 31), name
        if raw["student"].get("scratch"):
            assert raw["student"]["scratch"]["max_positions"] == 48
        if "max_new_tokens" in raw["sampler"]:
            assert raw["sampler"]["max_new_tokens"] == 31, name
    assert recipes["teacher"]["student"]["scratch"]["max_positions"] == 48
    plain = build_recipes(default_settings(), tmp_path, tmp_path / "tok", tmp_path / "runs")
    assert plain["teacher"]["student"]["scratch"]["max_positions"] == 32
    assert plain["run1/gkd"]["sampler"]["max_new_tokens"] == 12
    assert plain["run1/kd"]["data"]["max_response_length"] == 12


def test_benchmark_buckets_follow_the_world(tmp_path):
    from minillm_demo.synthetic import SyntheticBenchmark, TaskConfig, make_world, save_world, write_splits
    from minillm_demo.synthetic.task import LENGTHS_WORLD

    world = make_world(1, TaskConfig(**LENGTHS_WORLD))
    write_splits(world, tmp_path, {"test": 30})
    save_world(world, tmp_path)
    bench = SyntheticBenchmark(n_references=2)
    examples = bench.load_examples(str(tmp_path / "test.jsonl"))
    assert len(examples) == 30
    # in words (the mode word + outputs), as `minillm eval` buckets the first reference
    assert bench.length_buckets == ((3, 5), (6, 9), (10, 13), (14, 25))
    assert SyntheticBenchmark.length_buckets == ((0, 4), (5, 5), (6, None))


def test_lengths_command_prints_the_report_and_redraws_the_figure(tmp_path, cli):
    import json

    from minillm_demo.lengths import summary_lines

    results = _results()
    lines = summary_lines(results, lengths=(3,))
    assert lines[1].split() == ["sft", "l=3:", "1.5", "+-", "0.7"]  # [1, 2]
    row = next(line for line in lines if line.strip().startswith("rouge_l@13-24"))
    assert "kd +6.00* +- 2.12 (2 -> 2)" in row and "gkd +2.00 +- 2.12 (2 -> 9)" in row
    (tmp_path / "results.json").write_text(json.dumps(results))
    result = cli("demo", "lengths", tmp_path, env={"COLUMNS": "200"})
    assert result.code == 0, result.output
    assert (tmp_path / "lengths.png").read_bytes().startswith(PNG_MAGIC)
    assert "rouge_l@13-24" in result.stdout
    assert cli("demo", "lengths", tmp_path / "missing").code == 2


def test_results_page_is_the_table_in_markdown_under_its_provenance():
    from minillm_demo.report import results_markdown

    entry = {"mean": 0.5, "std": 0.25}
    results = {
        "settings": {"mode": "quick", "train_runs": 2, "eval": {"prompts": 10, "seeds": [1, 2, 3, 4]}},
        "kd": {"validity": entry, "rouge_l": {"mean": 30.0, "std": 1.5}},
        "provenance": {"command": "minillm demo --quick", "machine": "M", "date": "D", "version": "V"},
        "wall_times": {"total": 171.6},
    }
    page = results_markdown(results).splitlines()
    assert page[0] == "# minillm demo" and page[2] == "_Written by `minillm demo --quick` on M, D (minillm-distill V)._"
    header = next(line for line in page if line.startswith("| Model"))
    assert header.startswith("| Model | Valid % (higher is better) | Cover % (higher is better) | Rouge-L")
    row = next(line for line in page if line.startswith("| KD"))
    assert row == "| KD | 50.0 ± 25.0 | n/a | 30.0 ± 1.5 | n/a | n/a | n/a | n/a |"
    assert "Wall time 172 s." in page
