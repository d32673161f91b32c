"""``minillm recipes copy NAME DIR`` copies a recipe with its data; ``show`` says so."""

from __future__ import annotations

import pytest

from minillm_distill.recipe.copy import local_data_paths
from minillm_distill.recipe.shipped import shipped_recipes

TINY = sorted(n for n in shipped_recipes() if n.startswith("tiny/"))


@pytest.mark.parametrize("name", TINY)
def test_copy_then_validate_from_another_directory(cli, tmp_path, monkeypatch, name):
    source = shipped_recipes()[name]
    res = cli("recipes", "copy", name, tmp_path / "mine")
    assert res.code == 0, res.output
    copied = tmp_path / "mine" / source.name
    assert copied.read_text(encoding="utf-8") == source.read_text(encoding="utf-8")  # comments kept
    data = local_data_paths(source)
    assert data  # every tiny recipe reads local data
    for rel in data:
        assert (tmp_path / "mine" / rel).read_bytes() == (source.parent / rel).read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = cli("recipes", "validate", copied)
    assert res.code == 0, res.output
    assert "ok" in res.stdout


def test_the_recipe_alone_does_not_validate(cli, tmp_path, monkeypatch):
    """Why copy exists: `show tiny/kd > mine.yaml` elsewhere names a data file that is not there."""
    res = cli("recipes", "show", "tiny/kd")
    mine = tmp_path / "mine.yaml"
    mine.write_text(res.stdout, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli("recipes", "validate", mine).code == 3


def test_show_tells_how_to_copy_on_stderr(cli):
    res = cli("recipes", "show", "tiny/kd")
    assert res.code == 0
    assert "# this recipe reads data/instructions.jsonl relative to its own folder" in res.stderr
    assert "minillm recipes copy tiny/kd DIR" in res.stderr
    assert "recipes copy" not in res.stdout  # stdout stays the recipe, verbatim


def test_show_of_a_recipe_without_local_data_says_nothing(cli):
    res = cli("recipes", "show", "gpt2-xl-to-base")
    assert res.code == 0 and res.stderr == ""


def test_copy_refuses_to_overwrite_without_force(cli, tmp_path):
    assert cli("recipes", "copy", "tiny/kd", tmp_path).code == 0
    (tmp_path / "kd.yaml").write_text("edited\n", encoding="utf-8")
    res = cli("recipes", "copy", "tiny/kd", tmp_path)
    assert res.code == 2
    assert "alreadyexists" in res.flat_stderr and "--force" in res.flat_stderr
    assert (tmp_path / "kd.yaml").read_text(encoding="utf-8") == "edited\n"
    assert cli("recipes", "copy", "tiny/kd", tmp_path, "--force").code == 0
    assert (tmp_path / "kd.yaml").read_text(encoding="utf-8") != "edited\n"


def test_copy_unknown_recipe_suggests(cli, tmp_path):
    res = cli("recipes", "copy", "tiny/kdd", tmp_path)
    assert res.code == 3 and "did you mean 'tiny/kd'?" in res.stderr
