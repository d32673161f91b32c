"""A benchmark plugin's own mistakes in ``minillm eval`` are its panel (exit 4, plugin and distribution named),
never a raw traceback; references given as one string are refused, not split into characters.

Uses the test kit as a plugin author would: ``install_plugin`` (tests/plugin_fixtures/fx_raising.py as the
distribution ``fx-raising``), ``tiny_model_folder`` and ``cli``."""

from __future__ import annotations

import json

import pytest
from helpers import PLUGIN_FIXTURES

from minillm_distill.benchmark import EvalExample


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [{"question": "Name a colour.", "answer": "Blue."}, {"question": "Two plus two?", "answer": "Four."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def run_eval(cli, install_plugin, tiny_model_folder, qa_file, tmp_path, monkeypatch):
    install_plugin("fx_raising", distribution="fx-raising", name="raising", path=PLUGIN_FIXTURES)
    model = tiny_model_folder("llama")

    def run(mode: str | None):
        if mode is None:
            monkeypatch.delenv("MINILLM_FX_FAIL", raising=False)
        else:
            monkeypatch.setenv("MINILLM_FX_FAIL", mode)
        return cli("eval", "--bench", "fixture_bench", "--model", model, "--data", qa_file, "--max-new-tokens", "4",
                   "--output-dir", tmp_path / f"out-{mode}")  # fmt: skip

    return run


def test_a_raising_parse_record_is_the_plugins_panel(run_eval):
    res = run_eval("parse_raise")
    assert res.code == 4, res.output
    flat = " ".join(res.stderr.replace("│", " ").split())
    assert "plugin 'raising' (distribution fx-raising) failed in FixtureBench.parse_record: KeyError: 'prompt'" in flat
    assert "Traceback" not in res.output


def test_references_given_as_one_string_are_refused(run_eval):
    res = run_eval("string_refs")
    assert res.code == 4, res.output
    flat = " ".join(res.stderr.replace("│", " ").split())
    assert "EvalExample.references must be a sequence of strings, not str" in flat
    assert "failed in FixtureBench.parse_record" in flat


def test_the_same_benchmark_evaluates_when_nothing_breaks(run_eval, tmp_path):
    res = run_eval(None)
    assert res.code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out-None").rglob("predictions.jsonl").__next__().open()]
    assert {tuple(r["references"]) for r in rows} == {("Blue.",), ("Four.",)}  # each seed's rows


def test_eval_example_keeps_sequences_as_tuples_and_refuses_strings():
    assert EvalExample("q", "", ["a", "b"], choices=["x"]).references == ("a", "b")
    with pytest.raises(TypeError, match="references=\\(text,\\)"):
        EvalExample("q", "", "abc")
    with pytest.raises(TypeError, match="choices must be a sequence of strings"):
        EvalExample("q", "", ("a",), choices=(1, 2))
