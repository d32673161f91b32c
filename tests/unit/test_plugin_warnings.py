"""``minillm plugins`` reports a function named like a hook that lacks ``@hookimpl`` (pluggy ignores it)."""

from __future__ import annotations

import json
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

import minillm_distill.plugins as plugins_mod
from minillm_distill.plugins import DISABLE_ENV, load_plugins

PLUGIN = """
from minillm_distill.api import ModelFamily, hookimpl


class TmpFamily(ModelFamily):
    name = "tmp_family"
    model_types = ("tmp",)


def register_divergences(register):  # forgot @hookimpl
    raise AssertionError("never called")


@hookimpl
def register_model_families(register):
    register(TmpFamily)


class Commands:  # a class with one forgotten marker too
    def register_commands(self, app):
        pass
"""


@pytest.fixture
def tmp_plugin(tmp_path, monkeypatch):
    """A plugin module ``tmp_unmarked`` on sys.path, and an entry point naming it next to the installed ones."""
    (tmp_path / "tmp_unmarked.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "tmp_unmarked", raising=False)
    real = plugins_mod.entry_points
    fake = EntryPoint(name="unmarked", value="tmp_unmarked", group="minillm")
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), fake])
    yield fake
    sys.modules.pop("tmp_unmarked", None)


def test_unmarked_hook_is_a_warning_and_the_marked_one_still_registers(tmp_plugin):
    ps = load_plugins([tmp_plugin])
    (info,) = ps.plugins
    assert info.status == "loaded"
    assert info.provides == {"model_family": ["tmp_family"]}
    assert len(info.warnings) == 1
    warning = info.warnings[0]
    assert "tmp_unmarked: register_divergences() is not marked @hookimpl" in warning
    assert "from minillm_distill.api import hookimpl" in warning


def test_unmarked_method_of_a_class_plugin_is_reported(tmp_plugin):
    ps = load_plugins([EntryPoint(name="cls", value="tmp_unmarked:Commands", group="minillm")])
    (info,) = ps.plugins
    assert info.status == "loaded"
    assert [w.split("()")[0] for w in info.warnings] == ["tmp_unmarked:Commands: register_commands"]


def test_builtin_plugins_have_no_warnings(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    ps = load_plugins()
    assert [w for p in ps.plugins for w in p.warnings] == []


def test_plugins_command_prints_the_warning(cli, tmp_plugin):
    table = cli("plugins")
    assert table.code == 0, table.output
    assert "warning: plugin 'unmarked': tmp_unmarked: register_divergences() is not marked @hookimpl" in table.stdout
    result = cli("plugins", "--json")
    assert result.code == 0, result.output
    payload = json.loads(result.stdout)
    by_name = {p["name"]: p for p in payload["plugins"]}
    assert len(by_name["unmarked"]["warnings"]) == 1
    assert payload["warnings"] == [f"plugin 'unmarked': {by_name['unmarked']['warnings'][0]}"]
    assert all(p["warnings"] == [] for name, p in by_name.items() if name != "unmarked")
