"""Classes registered by reference (``register("module:Class", name=...)``) are imported on first use."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from minillm_distill.errors import ExitCode, PluginError
from minillm_distill.plugins import DISABLE_ENV, load_plugins
from minillm_distill.registry import LazyClass

HOOKS = """
from minillm_distill.api import hookimpl


@hookimpl
def register_divergences(register):
    for target, name in TARGETS:
        register(target, name=name)
"""

IMPL = """
from minillm_distill.api import TokenDivergence


class Zero(TokenDivergence):
    name = "zero"

    def per_token(self, student_logits, teacher_logits, targets):
        return (student_logits * 0).sum(-1)
"""


@pytest.fixture
def lazy_plugin(tmp_path, monkeypatch):
    """Write ``tmp_lazy_hooks`` (registering TARGETS) and ``tmp_lazy_impl``; return a loader of that plugin."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    (tmp_path / "tmp_lazy_impl.py").write_text(textwrap.dedent(IMPL), encoding="utf-8")
    (tmp_path / "tmp_lazy_broken.py").write_text("raise RuntimeError('broken on import')\n", encoding="utf-8")

    def load(*targets: tuple[str, str | None]):
        for mod in ("tmp_lazy_hooks", "tmp_lazy_impl", "tmp_lazy_broken"):
            sys.modules.pop(mod, None)
        (tmp_path / "tmp_lazy_hooks.py").write_text(f"TARGETS = {list(targets)!r}\n{HOOKS}", encoding="utf-8")
        return load_plugins([EntryPoint(name="lazy", value="tmp_lazy_hooks", group="minillm")])

    yield load
    for mod in ("tmp_lazy_hooks", "tmp_lazy_impl", "tmp_lazy_broken"):
        sys.modules.pop(mod, None)


def test_lazy_class_is_listed_without_importing_it_and_loaded_on_use(lazy_plugin):
    ps = lazy_plugin(("tmp_lazy_impl:Zero", "zero"))
    assert ps.plugins[0].status == "loaded", ps.plugins[0].error
    assert ps.plugins[0].provides == {"divergence": ["zero"]}
    assert "zero" in ps.divergences
    assert "tmp_lazy_impl" not in sys.modules
    cls = ps.divergences.get("zero")
    assert cls is sys.modules["tmp_lazy_impl"].Zero


def test_name_that_does_not_match_the_class_is_a_plugin_error_on_use(lazy_plugin):
    ps = lazy_plugin(("tmp_lazy_impl:Zero", "nought"))
    with pytest.raises(PluginError) as err:
        ps.divergences.get("nought")
    assert err.value.exit_code == ExitCode.PLUGIN
    assert "plugin 'lazy'" in err.value.message and "named 'zero'" in err.value.message


def test_class_whose_module_fails_to_import_is_a_plugin_error_on_use(lazy_plugin):
    ps = lazy_plugin(("tmp_lazy_broken:Zero", "zero"))
    with pytest.raises(PluginError, match="loading it failed: RuntimeError: broken on import"):
        ps.divergences.get("zero")


def test_missing_attribute_is_a_plugin_error_on_use(lazy_plugin):
    ps = lazy_plugin(("tmp_lazy_impl:Nope", "zero"))
    with pytest.raises(PluginError, match="tmp_lazy_impl:Nope, but loading it failed: AttributeError"):
        ps.divergences.get("zero")


@pytest.mark.parametrize(
    ("target", "name", "message"),
    [
        ("tmp_lazy_impl.Zero", "zero", "not of the form 'package.module:ClassName'"),
        ("tmp_lazy_impl:Zero", None, "needs the name it registers"),
    ],
)
def test_bad_reference_fails_the_plugin_at_load_time(lazy_plugin, target, name, message):
    (info,) = lazy_plugin((target, name)).plugins
    assert info.status == "failed"
    assert "in register_divergences" in info.error and message in info.error
    assert info.provides == {}


def test_every_builtin_reference_resolves_to_a_class_of_that_name(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    ps = load_plugins()
    lazy = 0
    for registry in ps.registries.values():
        for entry in registry.entries():
            lazy += entry.lazy is not None
            assert entry.cls.name == entry.name
            assert issubclass(entry.cls, registry.base)
    assert lazy >= 14  # the built-in divergences and samplers


def test_lazy_class_reference_checks_its_form():
    with pytest.raises(TypeError, match="not of the form"):
        LazyClass(":Zero", "zero")
    assert LazyClass("minillm_distill.builtins.divergences.fkl:ForwardKL", "fkl").name == "fkl"


def test_a_reference_to_a_missing_module_fails_only_the_name_that_uses_it(lazy_plugin):
    """The README's promise: a lazy class fails "only when a recipe uses the name"; the plugin still loads,
    its other classes work, and ``minillm plugins`` warns about the missing module."""
    ps = lazy_plugin(("tmp_no_such_module:Zero", "ghost"), ("tmp_lazy_impl:Zero", "zero"))
    (info,) = ps.plugins
    assert info.status == "loaded", info.error
    assert info.provides == {"divergence": ["ghost", "zero"]}
    assert any("no module named 'tmp_no_such_module'" in w and "'ghost'" in w for w in info.warnings), info.warnings
    assert ps.divergences.get("zero").name == "zero"
    with pytest.raises(PluginError, match="registered divergence 'ghost' as tmp_no_such_module:Zero, but loading"):
        ps.divergences.get("ghost")


def test_recipes_schema_leaves_out_a_broken_class_and_keeps_everyone_elses(lazy_plugin):
    from minillm_distill.recipe.json_schema import recipe_json_schema

    ps = lazy_plugin(("tmp_no_such_module:Zero", "ghost"), ("tmp_lazy_impl:Zero", "zero"))
    skipped: list[str] = []
    schema = recipe_json_schema(ps, skipped=skipped)
    names = [v["properties"]["name"]["const"] for v in schema["properties"]["divergence"]["oneOf"]]
    assert names == ["zero"]
    assert len(skipped) == 1 and "divergence 'ghost' left out" in skipped[0]


def test_recipes_schema_command_exits_0_with_a_warning_for_a_broken_plugin(cli, install_plugin, tmp_path):
    (tmp_path / "tmp_ghost_hooks.py").write_text(
        "TARGETS = [('tmp_no_such_module:Zero', 'ghost')]\n" + HOOKS, encoding="utf-8"
    )
    install_plugin("tmp_ghost_hooks", distribution="fx-ghost", name="ghost", path=tmp_path)
    res = cli("recipes", "schema")
    assert res.code == 0, res.output
    assert "warning: divergence 'ghost' left out" in res.stderr
    assert '"const": "fkl"' in res.stdout and '"const": "ghost"' not in res.stdout
