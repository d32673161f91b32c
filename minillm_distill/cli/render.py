"""The one place that turns an error into what the user sees: a Rich panel on stderr."""

from __future__ import annotations

import traceback

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from minillm_distill.errors import MinillmError

stderr = Console(stderr=True, highlight=False)


def render_error(err: MinillmError, *, debug: bool = False) -> None:
    body = Text()
    body.append(err.message, style="bold")
    for line in err.details:
        body.append("\n  • " + line)
    if err.why:
        body.append("\nwhy: ", style="bold yellow")
        body.append(err.why)
    if err.hint:
        body.append("\nwhat to do: ", style="bold green")
        body.append(err.hint)
    if not debug:
        body.append("\n(run with --debug for the Python traceback)", style="dim")
    stderr.print(Panel(body, title=f"{err.title} (exit {int(err.exit_code)})", border_style="red", expand=False))
    if debug:
        # markup=False: a traceback is full of [brackets] that Rich would otherwise eat or choke on
        stderr.print("".join(traceback.format_exception(type(err), err, err.__traceback__)), markup=False)
