"""``minillm demo``: the offline proof: teacher, SFT student, KD / SeqKD / GKD / MiniLLM, evaluation, report."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def demo(
    quick: bool = typer.Option(
        False, "--quick", help="The same chain with far fewer steps and prompts (a smoke test, under 6 minutes)."
    ),
    output_dir: Path = typer.Option(
        Path("runs/demo"), "--output-dir", help="Where data, runs, results.json and demo.png go."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the synthetic world and of every run."),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Change a setting (repeatable), e.g. distill.steps=3000, train_runs=1, methods=\\[kd,minillm], "
        "minillm_alpha=0.5, world.shared_weight=0. The settings are listed in DIR/demo-settings.json.",
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads to use: that many single-threaded stages run at once (at most 4; default: 2, or 1 "
        "on a one-core machine).",
    ),
) -> None:
    """Train a teacher and a 34x smaller student on a synthetic task with a known answer distribution, distill
    the student with KD, SeqKD, GKD and MiniLLM, and compare them all (offline, CPU; about 12 minutes on 2 cores).

    Every student is trained 3 times (its own seeds each run) from the one teacher. Prints a table (mean +- std
    over the runs, each evaluated on 1,000 held-out prompts) and writes DIR/results.json and DIR/demo.png.
    Stops with an error if the teacher has not learned the task."""
    from rich.console import Console

    from minillm_cli.demo.config import settings_for
    from minillm_cli.demo.overrides import apply_overrides
    from minillm_cli.demo.pipeline import run_demo

    settings = apply_overrides(settings_for(quick=quick, seed=seed), overrides)
    n_threads = threads if threads is not None else min(2, os.cpu_count() or 1)
    run_demo(settings, output_dir, threads=n_threads, console=Console(stderr=True))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
