"""Stages die with the runner that started them: a SIGTERM to ``minillm demo`` (or anything running a
:class:`~minillm_distill.jobs.Runner`) stops its running stages first (they were left running with parent 1),
and a runner killed outright (SIGKILL, which no handler sees) takes them with it through the kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rich.console import Console
    from minillm_distill.jobs import Job, Runner

    tmp = Path(sys.argv[1])
    code = f"import os, time; open({str(tmp / 'child.pid')!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    child = [sys.executable, "-c", code]
    Runner(Console(file=open("/dev/null", "w")), lanes=1, threads=1, cwd=tmp).run([Job("a", "a", child, tmp / "a.log")])
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) is not running
        return f.read().split(")")[-1].split()[0] != "Z"


def _start(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)])
    pidfile = tmp_path / "child.pid"
    deadline = time.time() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    return proc, int(pidfile.read_text())


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_runner_leaves_no_stage_running(tmp_path, sig):
    proc, child = _start(tmp_path)
    assert _alive(child)
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    try:
        assert _gone_within(child, 15), "the stage outlived its runner"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
