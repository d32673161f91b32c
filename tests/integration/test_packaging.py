"""The wheel carries every module of the source tree (an explicit package list is easy to forget)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT

MAPPING = {  # import name -> folder: they match (the built-in plugins and the recipes are inside the package)
    "minillm_distill": ROOT / "minillm_distill",
    "minillm_cli": ROOT / "minillm_cli",  # the old import name, kept for one release
}


WHEEL_ENTRY_POINTS: list[str] = []


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("minillm_distill-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        (ep,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        WHEEL_ENTRY_POINTS.append(z.read(ep).decode())
        return names


@pytest.mark.slow
def test_wheel_contains_every_module_and_recipe(wheel_names):
    missing = []
    for pkg, src in MAPPING.items():
        for f in src.rglob("*"):
            if f.suffix not in (".py", ".yaml", ".jsonl") or "__pycache__" in f.parts:
                continue
            name = f"{pkg}/{f.relative_to(src).as_posix()}"
            if name not in wheel_names:
                missing.append(name)
    assert not missing, f"not in the wheel (add the package to pyproject.toml): {missing}"


def test_wheel_declares_the_builtin_entry_points(wheel_names):
    assert any(n.endswith("entry_points.txt") for n in wheel_names)
    assert any(n.startswith("minillm_distill-") and n.endswith(".dist-info/METADATA") for n in wheel_names)


def test_the_wheel_entry_points_name_modules_it_carries(wheel_names):
    """The distribution is ``minillm-distill`` (``minillm`` on PyPI is another project); its ``minillm``
    command and its built-in plugins point at modules that are in the wheel."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(WHEEL_ENTRY_POINTS[-1])
    assert parser["console_scripts"]["minillm"] == "minillm_distill.cli.main:main"
    targets = dict(parser["minillm"])
    assert set(targets) == {"divergences", "model_families", "samplers", "benchmarks"}
    for target in targets.values():
        path = target.replace(".", "/")
        assert f"{path}/__init__.py" in wheel_names or f"{path}.py" in wheel_names, target


@pytest.mark.slow
def test_the_demo_package_wheel_contains_every_module_and_its_entry_points(tmp_path):
    demo = ROOT / "packages" / "minillm-demo"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), demo],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = tmp_path.glob("minillm_demo-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
        declared = z.read(entry_points).decode()
    src = demo / "src"
    modules = {f.relative_to(src).as_posix() for f in src.rglob("*.py") if "__pycache__" not in f.parts}
    assert len(modules) > 20 and modules <= names, sorted(modules - names)
    assert "demo = minillm_demo.commands" in declared and "synthetic = minillm_demo.synthetic" in declared
