"""Eval table labels: the run name, the run folder for ``final``, unique, and ``PATH=LABEL``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import BENCH_FIXTURES
from tiny_models import save_tiny_model

from minillm_distill.errors import UsageError
from minillm_distill.eval.labels import model_labels, split_model_arg

FIXTURES = BENCH_FIXTURES


def _folder(path: Path, card_name: str | None = None, recipe_name: str | None = None) -> str:
    path.mkdir(parents=True)
    if card_name:
        (path / "README.md").write_text(f"---\nlibrary_name: transformers\n---\n\n# {card_name} (step 20)\n\ntext\n")
    if recipe_name:
        (path / "minillm_recipe.yaml").write_text(f"# header\nname: {recipe_name}\nseed: 1\n")
    return str(path)


def test_final_folders_are_labelled_by_their_run(tmp_path):
    a = _folder(tmp_path / "runs" / "kd" / "final")
    b = _folder(tmp_path / "runs" / "hel" / "final")
    assert model_labels([a]) == ["kd"]  # not "final"
    assert model_labels([a, b]) == ["kd", "hel"]


def test_run_name_from_the_model_card_or_the_exported_recipe(tmp_path):
    card = _folder(tmp_path / "x" / "final", card_name="tiny-minillm")
    exported = _folder(tmp_path / "exports" / "model-a", recipe_name="gpt2-kd")
    plain = _folder(tmp_path / "some" / "student")
    assert model_labels([card, exported, plain]) == ["tiny-minillm", "gpt2-kd", "student"]


def test_collisions_get_the_parent_then_a_counter(tmp_path):
    a = _folder(tmp_path / "sweep1" / "kd" / "final")
    b = _folder(tmp_path / "sweep2" / "kd" / "final")
    assert model_labels([a, b]) == ["sweep1-kd", "sweep2-kd"]
    assert model_labels(["gpt2", "gpt2"]) == ["gpt2-1", "gpt2-2"]


def test_explicit_labels_win_and_must_be_unique(tmp_path):
    a = _folder(tmp_path / "runs" / "kd" / "final")
    assert split_model_arg(f"{a}=baseline") == (a, "baseline")
    assert split_model_arg("gpt2") == ("gpt2", None)
    assert model_labels([a, "gpt2"], ["baseline", None]) == ["baseline", "gpt2"]
    with pytest.raises(UsageError, match="label 'x' is given to two models"):
        model_labels([a, "gpt2"], ["x", "x"])
    with pytest.raises(UsageError, match="PATH=LABEL"):
        split_model_arg(f"{a}=")


def test_existing_path_with_an_equals_sign_is_a_path(tmp_path):
    odd = _folder(tmp_path / "lr=1e-4")
    assert split_model_arg(odd) == (odd, None)
    assert model_labels([odd]) == ["lr-1e-4"]


def test_eval_uses_the_given_label(cli, tmp_path):
    model = save_tiny_model(tmp_path / "runs" / "kd" / "final", "gpt2", max_positions=512)
    res = cli("eval", "--bench", "dolly", "--model", f"{model}=mine", "--model", str(model),
              "--data", FIXTURES / "dolly.jsonl", "--limit", "1", "--seeds", "1", "--max-new-tokens", "2",
              "--output-dir", tmp_path / "out", "--json")  # fmt: skip
    assert res.code == 0, res.output
    assert {p.name for p in (tmp_path / "out" / "dolly").iterdir() if p.is_dir()} == {"mine", "kd"}
    labels = [m.get("label") for m in json.loads(res.stdout)["models"]]
    assert labels == ["mine", "kd"]
