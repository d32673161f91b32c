"""Paths and the subprocess runner minillm's own tests share (the ``cli`` fixture comes from the plugin test kit,
:mod:`minillm_distill.testing`, which ``conftest.py`` loads)."""

from __future__ import annotations

from pathlib import Path

from minillm_distill.testing import CliResult
from minillm_distill.testing import run_minillm as _run_minillm

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_minillm(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run the ``minillm`` command in a subprocess, from the repository root."""
    return _run_minillm(*args, env=env, timeout=timeout, cwd=ROOT)
