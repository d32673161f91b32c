"""``minillm demo variants DIR NAME=STAGE[:KEY=VALUE,...] ...``: the screen of the demo variants.

What the variants are and how they are trained: :mod:`minillm_demo.variants`. This module shows the progress
and the table of the variants beside the demo's own rows; errors are minillm's panels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def variants_table(baseline: dict[str, Any], variants: dict[str, Any]) -> Table:
    from minillm_demo.config import METHODS
    from minillm_demo.report import COLUMNS, SHORT, cell

    table = Table(title="demo variants beside the demo's own models (mean \u00b1 std over runs x seeds)")
    table.add_column("Model", no_wrap=True)
    for _, header, *_ in COLUMNS:
        table.add_column(header, justify="right")
    for name in METHODS:
        if name in baseline:
            table.add_row(SHORT[name], *(cell(baseline[name].get(m), d, s) for m, _, d, s, _ in COLUMNS))
    table.add_section()
    for name, entry in variants.items():
        table.add_row(name, *(cell(entry.get(m), d, s) for m, _, d, s, _ in COLUMNS))
    return table


def run(root: Path, spec_texts: Sequence[str]) -> None:
    """Train and evaluate every variant, then print them beside the demo's rows."""
    from minillm_demo import variants as demo_variants

    specs = [demo_variants.parse_variant(a) for a in spec_texts]
    results = demo_variants.run_variants(root, specs, console=Console(stderr=True), threads=min(2, os.cpu_count() or 1))
    Console().print(variants_table(demo_variants.baseline_results(root), results))
