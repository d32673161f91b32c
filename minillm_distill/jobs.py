"""Running a pipeline's stages as child processes, a few at a time, with one live progress bar each.

Every stage (a training run, a model's evaluation) is its own process, started once the stages it depends on
are done and a *lane* is free; each lane runs one single-threaded process by default, which on a small CPU is
faster than one process with several threads for models this small (the demo's measurements: 2 threads made a
teacher step 2-3x slower on the 2-core machine it was tuned on, when anything else ran beside it). A stage's
output goes to its log file; its progress is read from a file it writes (a training run's ``metrics.jsonl``:
one line per step). A stage that fails stops the others and raises a :class:`RuntimeFailure` quoting the end
of its log. ``on_done`` runs in this process when a stage ends well (the demo checks the teacher there) and may
raise to abort everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from minillm_distill.errors import RuntimeFailure

POLL_S = 0.25
# variables that would make every child join one process group, or pin their threads
_DROP_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "MINILLM_EXIT_DIR")


@dataclass
class Job:
    name: str
    description: str
    argv: list[str]
    log: Path
    progress_file: Path | None = None
    """A file that gains one line per unit of work (``total`` units in all)."""
    total: int = 1
    deps: tuple[str, ...] = ()
    on_done: Callable[[], str | None] | None = None
    """Runs after a successful exit; may return a line to print, or raise to abort the demo."""
    wall_s: float | None = field(default=None, init=False)


def distill_job(
    name: str,
    description: str,
    recipe: Path,
    run: Path,
    *,
    log: Path,
    steps: int,
    deps: Sequence[str] = (),
    overrides: Sequence[str] = (),
    resume: bool = False,
) -> Job:
    """A stage that runs ``minillm distill RECIPE --output-dir RUN`` in its own process, its progress read from
    the run's ``metrics.jsonl`` (``steps`` rows in all). ``overrides``: ``--set KEY=VALUE`` items. ``resume``:
    continue from the run's latest checkpoint when it has one, and start afresh (removing the folder) when it
    was started but never checkpointed."""
    import shutil
    import sys

    from minillm_distill import run_layout

    argv = [sys.executable, "-m", "minillm_distill", "distill", str(recipe), "--output-dir", str(run)]
    for item in overrides:
        argv += ["--set", item]
    if resume and run_layout.latest_checkpoint(run) is not None:
        argv.append("--resume")
    elif resume and run.exists():
        shutil.rmtree(run)  # started but never checkpointed: nothing to keep
    return Job(
        name=name,
        description=description,
        argv=argv,
        log=log,
        progress_file=run / run_layout.METRICS,
        total=steps,
        deps=tuple(deps),
    )


def _count_lines(path: Path | None) -> int:
    if path is None or not path.is_file():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _tail(path: Path, lines: int = 15) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    kept = [line for line in text.splitlines() if line.strip() and "real_accelerator.py" not in line]
    return kept[-lines:]


def child_env(threads: int) -> dict[str, str]:
    """The environment of a stage: ``threads`` threads, offline, its own process group."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "100",
        }
    )
    return env


class Runner:
    """Runs jobs in dependency order on ``lanes`` parallel processes of ``threads`` threads each."""

    def __init__(self, console: Console, *, lanes: int, threads: int, cwd: Path) -> None:
        self.console = console
        self.lanes = max(1, lanes)
        self.threads = max(1, threads)
        self.cwd = cwd

    def run(self, jobs: Sequence[Job]) -> dict[str, float]:
        """Run every job (in the order given when several are ready); returns name -> wall seconds."""
        names = {job.name for job in jobs}
        for job in jobs:
            missing = [d for d in job.deps if d not in names]
            if missing:
                raise ValueError(f"job {job.name!r} depends on unknown jobs {missing}")
        pending = list(jobs)
        running: dict[str, tuple[Job, subprocess.Popen, float, int]] = {}
        done: set[str] = set()
        env = child_env(self.threads)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        previous = _raise_on_sigterm()
        try:
            with progress:
                while pending or running:
                    for job in [j for j in pending if all(d in done for d in j.deps)]:
                        if len(running) >= self.lanes:
                            break
                        pending.remove(job)
                        job.log.parent.mkdir(parents=True, exist_ok=True)
                        handle = job.log.open("w", encoding="utf-8")
                        proc = subprocess.Popen(
                            job.argv,
                            cwd=self.cwd,
                            env=env,
                            stdout=handle,
                            stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent,
                        )
                        handle.close()
                        task = progress.add_task(job.description, total=job.total)
                        running[job.name] = (job, proc, time.perf_counter(), task)
                    if pending and not running:
                        blocked = ", ".join(j.name for j in pending)
                        raise RuntimeFailure(f"stages {blocked} wait on stages that never ran")
                    time.sleep(POLL_S)
                    for name, (job, proc, start, task) in list(running.items()):
                        progress.update(task, completed=min(_count_lines(job.progress_file), job.total))
                        code = proc.poll()
                        if code is None:
                            continue
                        del running[name]
                        job.wall_s = time.perf_counter() - start
                        if code != 0:
                            progress.update(task, description=f"{job.description} [red]failed")
                            raise RuntimeFailure(
                                f"stage {job.name!r} failed (exit code {code})",
                                details=[f"log: {job.log}", *(f"  {line}" for line in _tail(job.log))],
                                hint="the log holds the whole output; fix the cause and run the command again",
                            )
                        progress.remove_task(task)  # the line printed below stands for it
                        note = job.on_done() if job.on_done is not None else None
                        progress.console.print(
                            f"[green]\u2713[/] {job.description}: {job.wall_s:.0f} s"
                            + (f" \u2014 {note}" if note else "")
                        )
                        done.add(name)
        except BaseException:  # an error, Ctrl-C, or SIGTERM (below): the stages stop with their parent
            for _, proc, _, _ in running.values():
                _stop(proc)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return {job.name: job.wall_s or 0.0 for job in jobs}


def _raise_on_sigterm() -> Any:
    """SIGTERM's default kills this process at once, leaving the stages running with parent 1; raise instead
    (exit 143, as the default would) so the runner stops them first. Returns the handler it replaced (None off
    the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    return signal.signal(signal.SIGTERM, terminated)


def _die_with_parent() -> None:
    """In a stage, before it runs (Linux): the kernel sends it SIGTERM when the runner dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
