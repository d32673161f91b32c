"""``python -m minillm_cli.demo.scale DIR SIZE ...``: the screen of the scale comparison.

What is trained and how: :mod:`minillm_cli.demo.scale`. This module parses the command line, shows the progress
and a table of every size, and renders errors.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from minillm_cli.cli.render import render_error
from minillm_cli.errors import MinillmError, UsageError

COLUMNS = (("validity", "Validity %", 100.0), ("rouge_l", "Rouge-L", 1.0), ("coverage", "Coverage %", 100.0))


def scale_table(results: dict[str, Any]) -> Table:
    from minillm_cli.demo.report import SHORT, cell

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # a usage error is a panel with exit 2, like every minillm command
        raise UsageError(f"python -m minillm_cli.demo.scale: {message}", hint=self.format_usage().strip())


def main(argv: Sequence[str] | None = None) -> int:
    from minillm_cli.demo import scale

    parser = _Parser(prog="python -m minillm_cli.demo.scale", description=(scale.__doc__ or "").split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a finished demo's folder")
    parser.add_argument("sizes", nargs="+", help="student sizes LAYERSxHIDDENxHEADS, e.g. 2x16x2 2x48x4")
    parser.add_argument("--methods", default=",".join(scale.SCALE_METHODS), help="comma-separated methods")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    try:
        args = parser.parse_args(argv)
        sizes = [scale.parse_size(s) for s in args.sizes]
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        results = scale.run_scale(
            args.dir, sizes, methods=methods, overrides=args.overrides, console=Console(stderr=True),
            threads=min(2, os.cpu_count() or 1),
        )  # fmt: skip
        Console().print(scale_table(results))
        Console().print(f"results: {args.dir / 'scale' / 'results.json'}  figure: {args.dir / 'scale.png'}")
    except MinillmError as exc:
        render_error(exc)
        return int(exc.exit_code)
    return 0
