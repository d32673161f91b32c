"""``minillm demo`` and its subcommands, registered through minillm's ``register_commands`` hook.

``minillm demo [--quick] [--set K=V]`` runs the whole offline comparison; ``minillm demo scale``, ``variants``
and ``lengths`` work on a finished demo's folder; ``minillm demo evaluate JOB.json`` is one evaluation stage, the
process the demo's runner starts for each model (hidden from ``--help``). Errors are minillm's panels, with its
exit codes.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from minillm_distill.api import UsageError, hookimpl

demo_app = typer.Typer(
    name="demo",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode="rich",
)


@demo_app.callback()
def demo(
    ctx: typer.Context,
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
    Stops with an error if the teacher has not learned the task. The subcommands work on a finished demo."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from minillm_demo.config import settings_for
    from minillm_demo.overrides import apply_overrides
    from minillm_demo.pipeline import run_demo

    settings = apply_overrides(settings_for(quick=quick, seed=seed), overrides)
    n_threads = threads if threads is not None else min(2, os.cpu_count() or 1)
    run_demo(settings, output_dir, threads=n_threads, console=Console(stderr=True))


@demo_app.command("scale")
def scale(
    root: Path = typer.Argument(..., metavar="DIR", help="A finished demo's folder."),
    sizes: list[str] = typer.Argument(
        ..., metavar="SIZE...", help="Student sizes LAYERSxHIDDENxHEADS, e.g. 2x16x2 2x48x4."
    ),
    methods: str = typer.Option("kd,gkd,minillm", "--methods", help="Comma-separated methods to train."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="A demo setting for every size (repeatable), e.g. distill.steps=200."
    ),
) -> None:
    """The demo's student chain at other student sizes, under the finished demo's teacher: writes
    DIR/scale/results.json, a scale entry in DIR/results.json and DIR/scale.png."""
    from minillm_demo import scale_cli

    scale_cli.run(root, sizes, methods, overrides)


@demo_app.command("variants")
def variants(
    root: Path = typer.Argument(..., metavar="DIR", help="A finished demo's folder."),
    specs: list[str] = typer.Argument(
        ...,
        metavar="NAME=STAGE[:KEY=VALUE,...]...",
        help="A variant of a distillation stage, e.g. kd-3k=kd:train.total_steps=3000.",
    ),
) -> None:
    """Variants of a finished demo's distillation stages (recipe overrides), trained and evaluated exactly like
    the demo's own and printed beside them; writes DIR/variants/results.json."""
    from minillm_demo import variants_cli

    variants_cli.run(root, specs)


@demo_app.command("lengths")
def lengths(root: Path = typer.Argument(..., metavar="DIR", help="A finished demo's folder.")) -> None:
    """Print the length report of a finished demo (Rouge-L and validity by reference length, exposure bias by
    generation length) and redraw its lengths.png."""
    import json

    from rich.console import Console

    from minillm_demo.lengths import summary_lines
    from minillm_demo.lengths_figure import draw_lengths_figure
    from minillm_demo.report import print_lengths_table

    if not (root / "results.json").is_file():
        raise UsageError(f"{root} holds no results.json", hint="give a finished demo's folder (minillm demo)")
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    console = Console()
    print_lengths_table(results, console)
    console.print("\n".join(summary_lines(results)), markup=False, highlight=False)
    draw_lengths_figure(results, root / "lengths.png")


@demo_app.command("evaluate", hidden=True)
def evaluate(job: Path = typer.Argument(..., metavar="JOB.json", help="An evaluation job the demo wrote.")) -> None:
    """One evaluation stage of the demo (the process its runner starts for each model)."""
    import json

    from minillm_demo.evaluate import EvalJob, run_job

    run_job(EvalJob(**json.loads(job.read_text(encoding="utf-8"))))


@hookimpl
def register_commands(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
