"""``minillm plugins check`` for model families and benchmarks: the built-in ones pass, and each kind of break a
plugin author makes fails the check that exists for it."""

from __future__ import annotations

import pytest
from helpers import PLUGIN_FIXTURES

from minillm_distill.api import Benchmark, EvalExample, ModelFamily
from minillm_distill.plugin_check import check_plan
from minillm_distill.plugins import load_plugins


def _failures(cls) -> dict[str, str]:
    return {r.check: r.failure or "" for r in check_plan(cls).run() if not r.passed}


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2", "opt", "mistral", "generic"])
def test_builtin_families_pass(name):
    assert _failures(load_plugins().model_families.get(name)) == {}


@pytest.mark.parametrize("name", ["dolly", "self_inst", "sni", "unni", "vicuna"])
def test_builtin_benchmarks_pass(name):
    assert _failures(load_plugins().benchmarks.get(name)) == {}


def _gpt2():
    return load_plugins().model_families.get("gpt2")


def test_a_family_whose_models_have_another_model_type_fails_scratch_model():
    class Mislabelled(_gpt2()):
        name = "mislabelled"
        model_types = ("gpt_neox",)  # but it builds GPT-2 configs: its saved models would load as gpt2

    assert set(_failures(Mislabelled)) == {"scratch model"}
    assert "model_type 'gpt2' is not in model_types ('gpt_neox',)" in _failures(Mislabelled)["scratch model"]


def test_a_family_whose_prompt_drops_the_input_fails_prompt():
    class Forgetful(_gpt2()):
        name = "forgetful"

        def format_prompt(self, instruction: str, input: str = "") -> str:
            return f"Q: {instruction}\nA:"

    assert set(_failures(Forgetful)) == {"prompt"}
    assert "does not hold the input" in _failures(Forgetful)["prompt"]


def test_a_family_whose_declaration_is_a_string_fails_declaration():
    class Stringly(ModelFamily):
        name = "stringly"
        model_types = "gpt2"  # a str, not a tuple: "g", "p", "t", "2" would be matched

    assert "declaration" in _failures(Stringly)


@pytest.fixture
def fixture_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_FIXTURES))
    import fx_raising

    return fx_raising.FixtureBench


@pytest.mark.parametrize(
    ("mode", "words"),
    [("parse_raise", "KeyError: 'prompt'"), ("string_refs", "EvalExample.references must be a sequence of strings")],
)
def test_a_benchmark_whose_records_do_not_parse_fails_records(fixture_bench, monkeypatch, mode, words):
    assert _failures(fixture_bench) == {}
    monkeypatch.setenv("MINILLM_FX_FAIL", mode)
    failures = _failures(fixture_bench)
    assert set(failures) == {"records"} and words in failures["records"], failures


def test_a_benchmark_declaration_with_overlapping_buckets_and_no_data_format_fails():
    class Sloppy(Benchmark):
        name = "sloppy"
        length_buckets = ((0, 10), (5, None))

        def parse_record(self, record, where, *, index):
            return [EvalExample(record["q"], "", (record["a"],))]

    failures = _failures(Sloppy)
    assert set(failures) == {"declaration"} and "data_format is empty" in failures["declaration"]
    Sloppy.data_format = "q and a"
    assert "length_buckets[1] starts at 5" in _failures(Sloppy)["declaration"]


def test_plugins_check_names_families_and_benchmarks(cli):
    res = cli("plugins", "check", "llama", "dolly")
    assert res.code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(line.split()[:4] == ["PASS", "model_family", "llama", "save"] for line in lines), lines
    assert any(line.split()[:4] == ["PASS", "benchmark", "dolly", "records"] for line in lines), lines
    assert lines[-1] == "7 checks of 2 plugin classes: all passed"
