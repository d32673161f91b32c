"""Loading recipes: shipped ones validate, ``--set`` overrides, YAML number parsing, data-path resolution,
resolved defaults, and the ``recipes list|show|validate`` commands."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT
from pydantic import ValidationError

from minillm_distill.errors import UsageError
from minillm_distill.recipe import Recipe, load_recipe, parse_overrides, resolved_recipe_dict
from minillm_distill.recipe.shipped import resolve_recipe_path, shipped_recipes
from minillm_distill.recipe.yaml_io import DuplicateKeyError, dump_yaml, load_yaml

TINY = ROOT / "recipes" / "tiny"
KD, SFT = TINY / "kd.yaml", TINY / "sft.yaml"


def flat(text: str) -> str:
    """Output without Rich panel borders and whitespace, so wrapped lines still match."""
    return re.sub(r"[\s│╭╮╰╯─•]+", "", text)


# -- shipped recipes ------------------------------------------------------------------------------


def test_the_tiny_recipes_are_shipped():
    assert {"tiny/kd", "tiny/sft"} <= set(shipped_recipes())


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_shipped_recipe_validates(cli, name, tmp_path, monkeypatch):
    path = shipped_recipes()[name]
    assert path.read_text(encoding="utf-8").startswith("#"), "a shipped recipe begins with a comment header"
    if name.startswith("smollm2/"):  # its data file is one the README writes in the working directory
        monkeypatch.chdir(tmp_path)
        record = {"instruction": "Name a colour.", "context": "", "response": "Blue.", "category": "open_qa"}
        (tmp_path / "dolly-train.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    # the full-size recipes name models (hub ids, earlier runs' outputs) that the tests do not have
    res = cli("recipes", "validate", path, *([] if name.startswith("tiny/") else ["--schema-only"]))
    assert res.code == 0, res.output
    assert "ok" in res.stdout
    assert isinstance(load_recipe(path), Recipe)


def test_recipes_list(cli):
    res = cli("recipes", "list")
    assert res.code == 0, res.output
    assert "tiny/kd" in res.stdout and "tiny/sft" in res.stdout
    assert "Tiny word-level KD" in res.stdout  # the first line of the recipe's header


def test_recipes_show_prints_the_file_verbatim(cli):
    res = cli("recipes", "show", "tiny/kd")
    assert res.code == 0, res.output
    assert res.stdout.strip() == KD.read_text(encoding="utf-8").strip()
    assert load_yaml(res.stdout)["name"] == "tiny-kd"  # `show ... > mine.yaml` gives a valid recipe


def test_recipes_show_unknown_name_suggests(cli):
    res = cli("recipes", "show", "tiny/kdd")
    assert res.code == 3
    assert "Traceback" not in res.output
    assert "no shipped recipe named 'tiny/kdd'" in res.stderr
    assert flat("did you mean 'tiny/kd'?") in flat(res.stderr)


def test_shipped_recipe_names_resolve_for_distill():
    assert resolve_recipe_path("tiny/kd") == shipped_recipes()["tiny/kd"]
    assert resolve_recipe_path("recipes/tiny/sft.yaml").name == "sft.yaml"


# -- YAML numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("3e-4", 3e-4), ("1e-5", 1e-5), ("1E5", 1e5), ("-2.5e-3", -2.5e-3), ("1.0e+3", 1000.0), (".5", 0.5)],
)
def test_exponent_floats_are_floats(text, value):
    parsed = load_yaml(f"lr: {text}")["lr"]
    assert isinstance(parsed, float) and parsed == value


def test_yaml_keeps_ints_strings_and_bools():
    data = load_yaml("a: 3\nb: fkl\nc: true\nd: '3e-4'\ne: 1_000\n")
    assert data == {"a": 3, "b": "fkl", "c": True, "d": "3e-4", "e": 1000}
    assert isinstance(data["a"], int) and not isinstance(data["a"], bool)


def test_exponent_lr_in_a_recipe_file_is_a_float(tmp_path):
    path = tmp_path / "r.yaml"
    shutil.copytree(TINY / "data", tmp_path / "data")
    path.write_text(KD.read_text(encoding="utf-8").replace("lr: 1e-3", "lr: 3e-4"))
    lr = load_recipe(path).train.lr
    assert isinstance(lr, float) and lr == 3e-4


def test_duplicate_keys_are_found_with_their_location():
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml("a:\n  b: 1\n  b: 2\nc: [{d: 1, d: 2}]\n")
    assert [loc for loc, _ in info.value.duplicates] == ["a.b", "c.0.d"]


def test_merge_keys_may_be_overridden():
    data = load_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert data["other"] == {"x": 1, "y": 3}


# -- --set overrides ------------------------------------------------------------------------------


def test_parse_overrides_reads_values_as_yaml():
    assert parse_overrides(["train.lr=1e-5", "eval.benchmarks=[dolly, vicuna]", "output.dir=a=b", "x.y="]) == [
        (["train", "lr"], 1e-5),
        (["eval", "benchmarks"], ["dolly", "vicuna"]),
        (["output", "dir"], "a=b"),
        (["x", "y"], ""),
    ]


@pytest.mark.parametrize("bad", ["trainlr", "=1", "train..lr=1", ".lr=1", "train.=1"])
def test_parse_overrides_rejects_malformed(bad):
    with pytest.raises(UsageError, match="bad --set"):
        parse_overrides([bad])


def test_set_lr_gives_a_float():
    recipe = load_recipe(KD, ["train.lr=1e-5"])
    assert isinstance(recipe.train.lr, float) and recipe.train.lr == 1e-05


def test_set_switches_the_divergence_and_its_options():
    recipe = load_recipe(KD, ["divergence.name=jsd", "divergence.beta=0.3"])
    assert recipe.divergence.name == "jsd"
    assert recipe.divergence.options == {"temperature": 1.0, "beta": 0.3}
    assert resolved_recipe_dict(recipe)["divergence"] == {"name": "jsd", "temperature": 1.0, "beta": 0.3}


def test_set_creates_new_nested_sections():
    recipe = load_recipe(SFT, ["eval.limit=5", "student.lora.r=4", "student.lora.alpha=8", "eval.data.dolly=d.jsonl"])
    assert recipe.eval.limit == 5
    assert recipe.student.lora is not None
    assert (recipe.student.lora.r, recipe.student.lora.alpha) == (4, 8.0)
    assert recipe.eval.data == {"dolly": "d.jsonl"}


def test_set_adds_a_teacher_section():
    recipe = load_recipe(SFT, ["teacher.path=gpt2", "divergence.name=fkl"])
    assert recipe.teacher is not None and recipe.teacher.path == "gpt2"


def test_set_integer_written_as_exponent():
    recipe = load_recipe(KD, ["train.total_steps=1e3"])
    assert recipe.train.total_steps == 1000 and isinstance(recipe.train.total_steps, int)


def test_set_via_the_cli(cli):
    res = cli("recipes", "validate", KD, "--set", "divergence.name=jsd", "--set", "divergence.beta=0.3")
    assert res.code == 0, res.output
    assert "dataset x jsd" in res.stdout


def test_malformed_set_exits_2(cli):
    res = cli("recipes", "validate", KD, "--set", "trainlr")
    assert res.code == 2
    assert "Traceback" not in res.output
    assert "bad --set 'trainlr'" in res.stderr
    assert flat("--set section.key=value") in flat(res.stderr)


def test_set_into_a_scalar_exits_2(cli):
    res = cli("recipes", "validate", KD, "--set", "train.lr.x=1")
    assert res.code == 2
    assert "Traceback" not in res.output
    assert flat("train.lr is a float, not a section") in flat(res.stderr)


def test_set_into_a_scalar_exits_2_for_distill(cli):
    res = cli("distill", KD, "--set", "train.lr.x=1")
    assert res.code == 2
    assert "Usage error" in res.stderr


def test_set_value_that_is_not_yaml_exits_2(cli):
    res = cli("recipes", "validate", KD, "--set", "eval.benchmarks=[dolly")
    assert res.code == 2
    assert "not valid YAML" in flat(res.stderr) or "notvalidYAML" in flat(res.stderr)


# -- data paths -----------------------------------------------------------------------------------


def test_data_paths_resolve_beside_the_recipe(tmp_path, monkeypatch):
    recipe_dir = tmp_path / "somewhere"
    shutil.copytree(TINY, recipe_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(recipe_dir / "kd.yaml")
    train = Path(recipe.data.train)
    assert train.is_absolute()
    assert train == (recipe_dir / "data" / "instructions.jsonl").resolve()


def test_eval_data_and_model_paths_resolve_beside_the_recipe_too(tmp_path, monkeypatch):
    from minillm_distill.recipe.loader import read_recipe_file

    recipe_dir = tmp_path / "somewhere"
    shutil.copytree(TINY, recipe_dir)
    (recipe_dir / "models" / "teacher").mkdir(parents=True)
    (recipe_dir / "eval.jsonl").write_text('{"instruction": "q", "response": "a"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    text = (recipe_dir / "kd.yaml").read_text(encoding="utf-8")
    text += "eval:\n  every: 5\n  benchmarks: [dolly]\n  data: {dolly: eval.jsonl}\n"
    (recipe_dir / "r.yaml").write_text(text, encoding="utf-8")
    data = read_recipe_file(recipe_dir / "r.yaml")
    assert data["eval"]["data"]["dolly"] == str((recipe_dir / "eval.jsonl").resolve())
    data["teacher"] = {"path": "models/teacher", "tokenizer": "byte"}
    data["student"] = {"path": "gpt2"}  # not beside the recipe: a hub id, left as written
    (recipe_dir / "r.yaml").write_text(dump_yaml(data), encoding="utf-8")
    data = read_recipe_file(recipe_dir / "r.yaml")
    assert data["teacher"] == {"path": str((recipe_dir / "models" / "teacher").resolve()), "tokenizer": "byte"}
    assert data["student"]["path"] == "gpt2"


def test_data_paths_fall_back_to_the_working_directory(tmp_path, monkeypatch):
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    shutil.copy(KD, recipe_dir / "kd.yaml")  # no data/ beside it
    shutil.copytree(TINY / "data", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert load_recipe(recipe_dir / "kd.yaml").data.train == "data/instructions.jsonl"


def test_missing_data_file_is_a_recipe_problem(tmp_path, monkeypatch):
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    shutil.copy(KD, recipe_dir / "kd.yaml")
    monkeypatch.chdir(tmp_path)
    from minillm_distill.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_dir / "kd.yaml")
    assert info.value.details[0].startswith("data.train: data file not found")


def test_hub_dataset_ids_are_not_checked_as_files():
    recipe = load_recipe(KD, ["data.train=databricks/databricks-dolly-15k"])
    assert recipe.data.train == "databricks/databricks-dolly-15k"


# -- names, defaults, immutability ----------------------------------------------------------------


def test_name_defaults_to_a_valid_form_of_the_file_name(tmp_path):
    shutil.copytree(TINY / "data", tmp_path / "data")
    path = tmp_path / "my kd (v2).yaml"
    path.write_text(re.sub(r"(?m)^name: .*\n", "", KD.read_text(encoding="utf-8")))
    recipe = load_recipe(path)
    assert recipe.name == "my-kd-v2"
    assert recipe.output_dir == "runs/my-kd-v2"


def test_resolved_recipe_fills_plugin_defaults():
    recipe = load_recipe(KD, ["divergence.name=jsd"])
    resolved = resolved_recipe_dict(recipe)
    assert resolved["divergence"] == {"name": "jsd", "temperature": 1.0, "beta": 0.5}
    assert resolved["sampler"] == {"name": "dataset"}
    assert resolved["train"]["betas"] == [0.9, 0.999]
    assert resolved["engine"]["zero_stage"] == 0
    assert resolved["eval"]["seeds"] == [10]


def test_resolved_recipe_of_sft_has_default_sampler():
    resolved = resolved_recipe_dict(load_recipe(SFT))
    assert resolved["sampler"] == {"name": "dataset"}
    assert resolved["teacher"] is None
    assert resolved["divergence"]["name"] == "sft"


@pytest.mark.parametrize("path", [KD, SFT])
def test_resolved_recipe_loads_back_to_the_same_recipe(tmp_path, path):
    recipe = load_recipe(path)
    out = tmp_path / "recipe.yaml"
    out.write_text(dump_yaml(resolved_recipe_dict(recipe)))
    again = load_recipe(out)  # the resolved recipe a run writes out is itself a valid recipe
    assert (again.name, again.train, again.student, again.data) == (
        recipe.name,
        recipe.train,
        recipe.student,
        recipe.data,
    )
    assert resolved_recipe_dict(again) == resolved_recipe_dict(recipe)


def test_recipe_models_are_frozen():
    recipe = load_recipe(KD)
    with pytest.raises(ValidationError):
        recipe.train.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        recipe.train = recipe.train  # type: ignore[misc]
    with pytest.raises(ValidationError):
        recipe.divergence.name = "rkl"  # type: ignore[misc]
    assert recipe.student.scratch is not None
    with pytest.raises(ValidationError):
        recipe.student.family = "llama"  # type: ignore[misc]


def test_model_copy_with_update_is_the_way_to_change_a_recipe():
    recipe = load_recipe(KD)
    changed = recipe.model_copy(update={"train": recipe.train.model_copy(update={"lr": 2e-3})})
    assert changed.train.lr == 2e-3 and recipe.train.lr == 1e-3


def test_plugin_options_reject_booleans_and_infinities():
    from minillm_distill.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        load_recipe(KD, ["divergence.temperature=true", "student.scratch.layers=.inf"])
    details = "\n".join(info.value.details)
    assert "divergence.temperature: Input should be a number, not the boolean true" in details
    assert "student.scratch.layers:" in details


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_shipped_recipe_has_a_complete_header(name):
    """Every shipped recipe says what it reproduces, its prerequisites, the hardware and the exact command."""
    text = shipped_recipes()[name].read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for field in ("What it reproduces:", "Prerequisites:", "Hardware", "Command: minillm distill"):
        assert field in header, f"{name}: header lacks {field!r}"
    command = next(line for line in header.splitlines() if "Command: minillm distill" in line)
    assert f"recipes/{name}.yaml" in command, command
