"""``minillm plugins``: every plugin, what it registers, and any that failed to load."""

from __future__ import annotations

import json

import typer

from minillm_cli.cli.plugin_commands import ensure_plugin_commands
from minillm_cli.cli.state import state
from minillm_cli.errors import ExitCode

STATUS_STYLES = {"loaded": "green", "disabled": "yellow", "failed": "red"}

KIND_LABELS = {
    "divergence": "divergences",
    "sampler": "samplers",
    "model_family": "model families",
    "benchmark": "benchmarks",
    "command": "commands",
}


def plugins(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List installed plugins (name, distribution, version) and what each registers."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from minillm_cli.plugins import get_plugins

    ensure_plugin_commands(ctx)  # the commands they add, and any register_commands failure
    ps = get_plugins()
    if as_json:
        payload = {
            "plugins": [p.as_dict() for p in ps.plugins],
            "registries": {kind: reg.names() for kind, reg in ps.registries.items()},
            "conflicts": ps.conflicts,
            "warnings": [f"plugin {p.name!r}: {w}" for p in ps.plugins for w in p.warnings],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        console = Console()
        table = Table(title="minillm plugins", show_lines=True)
        for col in ("plugin", "distribution", "version", "status", "provides"):
            table.add_column(col)
        for p in ps.plugins:
            provides = "\n".join(
                f"{KIND_LABELS.get(k, k)}: {', '.join(v) or '-'}" for k, v in sorted(p.provides.items())
            )
            # Text, not markup: an error message may contain [brackets]
            status = Text(p.status, style=STATUS_STYLES.get(p.status, "red"))
            if p.error:
                status.append("\n" + p.error)
            table.add_row(Text(p.name), Text(p.distribution), Text(p.version), status, Text(provides or "-"))
        console.print(table)
        for c in ps.conflicts:
            console.print(Text.assemble(("conflict: ", "red"), c))
        for p in ps.plugins:
            for w in p.warnings:
                console.print(Text.assemble(("warning: ", "yellow"), f"plugin {p.name!r}: {w}"), soft_wrap=True)
        if state.debug:
            for p in ps.plugins:
                if p.traceback:
                    console.print(Text(f"plugin {p.name!r} failed:", style="bold red"))
                    console.print(p.traceback, markup=False, highlight=False)
    if ps.conflicts:
        raise typer.Exit(int(ExitCode.PLUGIN))


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
