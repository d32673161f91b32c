"""The plugin API (``minillm_distill.api``) is what built-in plugins use, and all they use."""

from __future__ import annotations

import ast
import importlib

import pytest
from helpers import ROOT

import minillm_distill.api as api


def _minillm_distill_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``minillm_distill`` module other than ``minillm_distill.api`` and the
    built-in plugins (``minillm_distill.builtins``: a plugin may build on another plugin, as on a third party's)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if (
                node.module == "minillm_distill"
            ):  # ``from minillm_distill import x`` imports minillm_distill.x (or __init__)
                modules = [f"minillm_distill.{alias.name}" for alias in node.names]
            else:
                modules = [node.module]
        else:
            continue
        for module in modules:
            if (module == "minillm_distill" or module.startswith("minillm_distill.")) and not (
                module == "minillm_distill.api" or module.startswith("minillm_distill.builtins")
            ):
                found.append((node.lineno, module))
    return found


def test_builtin_plugins_import_only_the_public_api() -> None:
    offenders = []
    files = sorted((ROOT / "minillm_distill" / "builtins").rglob("*.py"))
    assert len(files) > 20  # the walk found the plugins
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(ROOT)}:{line}: {module}" for line, module in _minillm_distill_imports(tree)]
    assert not offenders, "built-in plugins must import only minillm_distill.api:\n" + "\n".join(offenders)


def test_the_demo_package_imports_only_the_public_api() -> None:
    """The demo is a plugin package like a third party's (packages/minillm-demo): only ``minillm_distill.api``."""
    offenders = []
    files = sorted((ROOT / "packages" / "minillm-demo" / "src").rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(ROOT)}:{line}: {module}" for line, module in _minillm_distill_imports(tree)]
    assert not offenders, "the demo package must import only minillm_distill.api:\n" + "\n".join(offenders)


def test_the_core_imports_nothing_of_the_demo() -> None:
    offenders = []
    for path in sorted((ROOT / "minillm_distill").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {n}"
                for n in names
                if n.split(".")[0] == "minillm_demo" or n.startswith("minillm_distill.builtins.synthetic")
            ]
    assert not offenders, "the core must not import the demo package:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from minillm_distill.api import TokenDivergence", []),
        ("import minillm_distill.api", []),
        ("# from minillm_distill.sampler import x\n'''from minillm_distill.generation import decode'''", []),
        ("from minillm_distill.sampler import generate_rollout", [(1, "minillm_distill.sampler")]),
        ("def f():\n    import minillm_distill.generation as g", [(2, "minillm_distill.generation")]),
        ("from minillm_distill import errors", [(1, "minillm_distill.errors")]),
        ("from minillm_distill import api", []),
        ("import minillm_distill", [(1, "minillm_distill")]),
        ("from minillm_distill_other import x\nfrom .api import y", []),
    ],
)
def test_import_checker(source: str, expected: list[tuple[int, str]]) -> None:
    """The checker above sees real imports (nested ones too) and ignores comments and strings."""
    assert _minillm_distill_imports(ast.parse(source)) == expected


def test_every_export_resolves_to_its_defining_object() -> None:
    for name, module in api._EXPORTS.items():
        assert getattr(api, name) is getattr(importlib.import_module(module), name), name
    assert sorted(api.__all__) == sorted(api._EXPORTS)
    assert set(api.__all__) <= set(dir(api))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'decode_loop'"):
        api.decode_loop  # noqa: B018
    with pytest.raises(ImportError):
        exec("from minillm_distill.api import decode_loop", {})


def test_type_checking_imports_match_the_exports() -> None:
    """The ``if TYPE_CHECKING:`` block (what editors see) names exactly the lazy exports, from the same modules."""
    tree = ast.parse((ROOT / "minillm_distill" / "api.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == api._EXPORTS


def test_the_old_import_name_still_works_for_one_release_and_warns():
    """``minillm_cli`` (the import name before ``minillm_distill``): the package, its api and its test kit hand
    out the new modules' very objects, and importing it warns. Run in a fresh interpreter (the warning is
    issued once per process)."""
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n"
        "    import minillm_cli\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', 'minillm_distill' in str(w))\n"
        "warnings.simplefilter('ignore')\n"
        "import minillm_cli, minillm_cli.api, minillm_cli.testing, minillm_distill.api, minillm_distill.testing\n"
        "print(minillm_cli.api.TokenDivergence is minillm_distill.api.TokenDivergence,\n"
        "      minillm_cli.hookimpl is minillm_distill.hookimpl,\n"
        "      minillm_cli.testing.cli is minillm_distill.testing.cli,\n"
        "      'TokenDivergence' in minillm_cli.api.__all__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["warned: True", "True True True True"]
