"""``python -m minillm_cli.demo.variants DIR NAME=STAGE[:KEY=VALUE,...] ...``: the screen of the demo variants.

What the variants are and how they are trained: :mod:`minillm_cli.demo.variants`. This module parses the command
line, shows the progress and the table of the variants beside the demo's own rows, and renders errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from minillm_cli.cli.render import render_error
from minillm_cli.errors import MinillmError


def variants_table(baseline: dict[str, Any], variants: dict[str, Any]) -> Table:
    from minillm_cli.demo.config import METHODS
    from minillm_cli.demo.report import COLUMNS, SHORT, cell

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


def main(argv: Sequence[str] | None = None) -> int:
    from minillm_cli.demo import variants as demo_variants

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0].startswith("-"):
        sys.stderr.write((demo_variants.__doc__ or "").split("\n\n")[1] + "\n")
        return 2
    root = Path(args[0])
    try:
        specs = [demo_variants.parse_variant(a) for a in args[1:]]
        results = demo_variants.run_variants(
            root, specs, console=Console(stderr=True), threads=min(2, os.cpu_count() or 1)
        )
        Console().print(variants_table(demo_variants.baseline_results(root), results))
    except MinillmError as exc:
        render_error(exc)
        return int(exc.exit_code)
    return 0
