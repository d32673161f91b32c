"""The wheel carries every module of the source tree (an explicit package list is easy to forget)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT

MAPPING = {
    "minillm_cli": ROOT / "minillm_cli",
    "minillm_plugins": ROOT / "plugins",
    "minillm_recipes": ROOT / "recipes",
}


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
    (whl,) = out.glob("minillm-*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist())


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
