"""``minillm recipes schema``: a JSON Schema that accepts every shipped recipe and rejects what validate would."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from minillm_distill.plugins import load_plugins
from minillm_distill.recipe.json_schema import recipe_json_schema
from minillm_distill.recipe.shipped import shipped_recipes
from minillm_distill.recipe.yaml_io import load_yaml


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = recipe_json_schema(load_plugins())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture
def kd() -> dict:
    return load_yaml(shipped_recipes()["tiny/kd"].read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_every_shipped_recipe_validates(validator, name):
    recipe = load_yaml(shipped_recipes()[name].read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(recipe)] == []


def _rejected(validator, recipe) -> bool:
    return any(True for _ in validator.iter_errors(recipe))


def test_unknown_keys_are_rejected(validator, kd):
    for where in ((), ("train",), ("divergence",), ("sampler",)):
        bad = copy.deepcopy(kd)
        target = bad
        for key in where:
            target = target[key]
        target["no_such_key"] = 1
        assert _rejected(validator, bad), where


def test_plugin_options_follow_the_plugin_params(validator, kd):
    good = copy.deepcopy(kd)
    good["divergence"] = {"name": "jsd", "beta": 0.3, "temperature": 2.0}
    assert not _rejected(validator, good)
    for bad_section in ({"name": "jsd", "beta": "high"}, {"name": "fkl", "beta": 0.3}, {"name": "nope"}):
        bad = copy.deepcopy(kd)
        bad["divergence"] = bad_section
        assert _rejected(validator, bad), bad_section
    bad = copy.deepcopy(kd)
    bad["student"]["family"] = "gpt3"
    assert _rejected(validator, bad)


def test_cli_prints_the_schema(cli):
    res = cli("recipes", "schema")
    assert res.code == 0, res.output
    schema = json.loads(res.stdout)
    assert schema["title"] == "minillm recipe"
    names = {v["properties"]["name"]["const"] for v in schema["properties"]["divergence"]["oneOf"]}
    assert {"fkl", "rkl", "jsd", "minillm"} <= names
