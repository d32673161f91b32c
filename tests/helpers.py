"""Paths and the subprocess runner minillm's own tests share (the ``cli`` fixture comes from the plugin test kit,
:mod:`minillm_distill.testing`, which ``conftest.py`` loads)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from minillm_distill.testing import CliResult
from minillm_distill.testing import run_minillm as _run_minillm

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
BENCH_FIXTURES = TESTS / "fixtures" / "bench"
"""Small files in each benchmark's format (tests/fixtures/bench/README.md)."""
PLUGIN_FIXTURES = TESTS / "plugin_fixtures"
"""Tiny plugin modules loaded through fake entry points (tests/plugin_fixtures/__init__.py)."""


def run_minillm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> CliResult:
    """Run the ``minillm`` command in a subprocess, from the repository root (or ``cwd``)."""
    return _run_minillm(*args, env=env, timeout=timeout, cwd=cwd or ROOT)


def write_dolly(path: Path, n: int = 1100, seed: int = 0) -> Path:
    """A Dolly-format JSONL file of ``n`` made-up records (for the split and the reproduce pipeline)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            row = {"instruction": f"q{i} {rng.random()}", "context": "", "response": f"a{i}", "category": "open_qa"}
            handle.write(json.dumps(row) + "\n")
    return path
