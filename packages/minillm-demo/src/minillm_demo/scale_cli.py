"""``minillm demo scale DIR SIZE ...``: the screen of the scale comparison.

What is trained and how: :mod:`minillm_demo.scale`. This module checks the arguments, shows the progress and a
table of every size; errors are minillm's panels (``UsageError``: exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (("validity", "Validity %", 100.0), ("rouge_l", "Rouge-L", 1.0), ("coverage", "Coverage %", 100.0))


def scale_table(results: dict[str, Any]) -> Table:
    from minillm_demo.report import SHORT, cell

    table = Table(title="students of every size under one teacher (mean \u00b1 std over runs x seeds)")
    table.add_column("Student", no_wrap=True)
    table.add_column("Parameters", justify="right")
    table.add_column("Model", no_wrap=True)
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="right")
    for row in results["sizes"]:
        for i, method in enumerate(m for m in results["methods"] if m in row["models"]):
            first = i == 0
            table.add_row(
                f"{row['name']}{' (demo)' if row['source'] == 'demo' else ''}" if first else "",
                f"{row['parameters']:,}" if first else "",
                SHORT[method],
                *(cell(row["models"][method].get(m), 1, s) for m, _, s in COLUMNS),
            )
        table.add_section()
    return table


def run(root: Path, size_texts: Sequence[str], methods_text: str, overrides: Sequence[str]) -> None:
    """Train and evaluate every size, then print the table (arguments as the command line gives them)."""
    from minillm_demo import scale

    sizes = [scale.parse_size(s) for s in size_texts]
    methods = [m.strip() for m in methods_text.split(",") if m.strip()]
    results = scale.run_scale(
        root, sizes, methods=methods, overrides=overrides, console=Console(stderr=True),
        threads=min(2, os.cpu_count() or 1),
    )  # fmt: skip
    Console().print(scale_table(results))
    Console().print(f"results: {root / 'scale' / 'results.json'}  figure: {root / 'scale.png'}")
