"""``minillm eval`` checks every scoring package a benchmark needs before it generates anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import BENCH_FIXTURES
from tiny_models import save_tiny_model

from minillm_distill.benchmark import Benchmark
from minillm_distill.errors import ExitCode, ResourceError

FIXTURES = BENCH_FIXTURES


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", "gpt2", max_positions=512)


@pytest.fixture
def no_generation(monkeypatch):
    """Fail the test if eval gets as far as loading a model or generating."""
    import minillm_distill.cli.eval_cmd as eval_cmd
    import minillm_distill.eval.runner as runner

    def forbidden(*args, **kwargs):
        raise AssertionError("eval loaded a model or generated before checking its scorers")

    monkeypatch.setattr(runner, "generate_predictions", forbidden)
    monkeypatch.setattr(eval_cmd, "_load", forbidden)


def test_missing_rouge_score_fails_before_generation(cli, tiny_model, tmp_path, monkeypatch, no_generation):
    monkeypatch.setitem(sys.modules, "rouge_score", None)  # `import rouge_score` now raises ImportError
    res = cli("eval", "--bench", "dolly", "--model", tiny_model, "--data", FIXTURES / "dolly.jsonl",
              "--limit", "1", "--max-new-tokens", "2", "--output-dir", tmp_path)  # fmt: skip
    assert res.code == ExitCode.RESOURCE, res.output
    assert "benchmark 'dolly' cannot be scored: missing package(s) rouge-score" in res.output
    assert "pip install rouge-score" in res.output
    assert "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # nothing written


class NeedsTwo(Benchmark):
    name = "needs_two"
    scorer_packages = {**Benchmark.scorer_packages, "json": "json", "minillm_no_such_scorer": "no-such-scorer"}


def test_check_names_every_missing_package_and_only_those():
    with pytest.raises(ResourceError) as err:
        NeedsTwo().check_scorers()
    assert err.value.message == "benchmark 'needs_two' cannot be scored: missing package(s) no-such-scorer"
    assert err.value.hint == "pip install no-such-scorer"
    assert len(err.value.details) == 1 and "import minillm_no_such_scorer" in err.value.details[0]


def test_check_passes_when_everything_imports():
    class Fine(Benchmark):
        name = "fine"

    assert Fine().check_scorers() is None


def test_every_builtin_benchmark_declares_rouge_score(monkeypatch):
    from minillm_distill.plugins import load_plugins

    monkeypatch.delenv("MINILLM_DISABLE_PLUGINS", raising=False)
    registry = load_plugins().benchmarks
    assert len(registry) >= 6
    for entry in registry.entries():
        assert entry.cls.scorer_packages.get("rouge_score") == "rouge-score", entry.name
        entry.cls().check_scorers()  # installed with minillm itself
