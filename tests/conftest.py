"""Shared test setup: offline Hugging Face, an in-process CLI runner, tiny-model helpers."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# experiment trackers never reach the network from tests
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def flat_stderr(self) -> str:
        """stderr without the panel's box and whitespace: a long path wraps a message at any word."""
        return "".join(self.stderr.replace("│", "").split())


@pytest.fixture(autouse=True)
def _huge_page_switch_restored(monkeypatch):
    """The in-process ``minillm`` command sets THP_MEM_ALLOC_ENABLE in os.environ (minillm_cli/host_memory.py):
    registering it with monkeypatch undoes that after each test, so what later subprocesses inherit does not
    depend on test order."""
    value = os.environ.get("THP_MEM_ALLOC_ENABLE")
    if value is None:
        monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    else:
        monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", value)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``minillm ARGS...`` in-process; returns exit code, stdout, stderr."""
    from minillm_cli.cli.main import main
    from minillm_cli.cli.state import state
    from minillm_cli.plugins import reset_plugins

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        reset_plugins()
        state.debug = False
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        reset_plugins()
        return CliResult(code, out, err)

    return run


def run_minillm(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run the installed ``minillm`` console script in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "minillm_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
