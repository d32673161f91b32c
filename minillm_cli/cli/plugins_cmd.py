"""``minillm plugins``: every plugin, what it registers, and any that failed to load."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from minillm_cli.errors import ExitCode
from minillm_cli.plugins import get_plugins

KIND_LABELS = {
    "divergence": "divergences",
    "sampler": "samplers",
    "model_family": "model families",
    "benchmark": "benchmarks",
    "command": "commands",
}


def plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List installed plugins (name, distribution, version) and what each registers."""
    ps = get_plugins()
    if as_json:
        payload = {
            "plugins": [p.as_dict() for p in ps.plugins],
            "registries": {kind: reg.names() for kind, reg in ps.registries.items()},
            "conflicts": ps.conflicts,
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
            status = {"loaded": "[green]loaded[/]", "disabled": "[yellow]disabled[/]"}.get(
                p.status, f"[red]failed[/]\n{p.error}"
            )
            table.add_row(p.name, p.distribution, p.version, status, provides or "-")
        console.print(table)
        for c in ps.conflicts:
            console.print(f"[red]conflict:[/] {c}")
    if ps.conflicts:
        raise typer.Exit(int(ExitCode.PLUGIN))


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
