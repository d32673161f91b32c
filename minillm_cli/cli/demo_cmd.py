"""``minillm demo``: the offline proof: teacher, SFT student, KD / SeqKD / GKD / MiniLLM, evaluation, report."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def demo(
    quick: bool = typer.Option(
        False, "--quick", help="The same chain with far fewer steps and prompts (a smoke test, under 3 minutes)."
    ),
    output_dir: Path = typer.Option(
        Path("runs/demo"), "--output-dir", help="Where data, runs, results.json and demo.png go."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the synthetic world and of every run."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads to use: that many single-threaded stages run at once (at most 4; default: 2, or 1 "
        "on a one-core machine).",
    ),
) -> None:
    """Train a teacher and a 34x smaller student on a synthetic task with a known answer distribution, distill
    the student with KD, SeqKD, GKD and MiniLLM, and compare them all (offline, CPU; about 6 minutes on 2 cores).

    Prints a table (mean +- std over 3 sampling seeds x 1,000 held-out prompts) and writes DIR/results.json and
    DIR/demo.png. Stops with an error if the teacher has not learned the task."""
    from rich.console import Console

    from minillm_cli.demo.config import settings_for
    from minillm_cli.demo.pipeline import run_demo

    n_threads = threads if threads is not None else min(2, os.cpu_count() or 1)
    run_demo(settings_for(quick=quick, seed=seed), output_dir, threads=n_threads, console=Console(stderr=True))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
