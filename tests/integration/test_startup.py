"""Start-up: the quick commands import neither torch nor transformers/deepspeed, and Ctrl-C while the CLI is
still being imported exits 130 without a traceback. (Timings: ``benchmarks/startup.py``.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT

HEAVY = ("torch", "transformers", "deepspeed", "datasets")

QUICK_COMMANDS = [
    ["--version"],
    ["--help"],
    ["recipes", "list"],
    ["recipes", "show", "tiny/kd"],
    ["plugins"],
    ["plugins", "--json"],
]

# Runs a command as the console script does, then reports which heavy modules got imported.
PROBE = """
import json, sys
from minillm_distill.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("\\nPROBE " + json.dumps({{"code": code, "heavy": heavy}}) + "\\n")
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    env.pop("MINILLM_DISABLE_PLUGINS", None)
    return env


@pytest.mark.parametrize("args", QUICK_COMMANDS, ids=" ".join)
def test_quick_commands_do_not_import_torch(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    probe = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    assert probe["code"] == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip()  # the command did print its output
    assert probe["heavy"] == [], f"minillm {' '.join(args)} imported {probe['heavy']}"


@pytest.mark.slow
def test_the_probe_sees_torch_when_a_command_imports_it(tmp_path) -> None:
    """The check above can fail: `recipes validate` loads the divergence classes, which import torch."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), "recipes", "validate", "recipes/tiny/kd.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=300,
    )
    probe = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    assert probe["code"] == 0, proc.stdout + proc.stderr
    assert "torch" in probe["heavy"]


# Makes the import of `typer` (the CLI's first heavy import, inside main()) hang until interrupted.
SLOW_IMPORT = """
import sys, time

class SlowTyper:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            sys.stderr.write("IMPORTING\\n"); sys.stderr.flush()
            time.sleep(60)
        return None

sys.meta_path.insert(0, SlowTyper())
from minillm_distill.cli.main import main
main(sys.argv[1:])
"""


def test_ctrl_c_during_start_up_exits_130_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_IMPORT, "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == "IMPORTING"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip() == "interrupted"
    assert stdout == ""
