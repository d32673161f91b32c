"""``minillm plugins``: every plugin, what it registers, and any that failed to load; ``minillm plugins check``:
the property checks of installed divergences and samplers (:mod:`minillm_distill.plugin_check`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from minillm_distill.cli.plugin_commands import ensure_plugin_commands
from minillm_distill.cli.state import state
from minillm_distill.errors import ExitCode

STATUS_STYLES = {"loaded": "green", "disabled": "yellow", "failed": "red"}

KIND_LABELS = {
    "divergence": "divergences",
    "sampler": "samplers",
    "model_family": "model families",
    "benchmark": "benchmarks",
    "command": "commands",
}


app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="List installed plugins (name, distribution, version) and what each registers; "
    "`minillm plugins check` tests their divergences and samplers.",
)


@app.callback()
def plugins(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List installed plugins (name, distribution, version) and what each registers.

    `minillm plugins check [NAME...]` runs property checks on installed divergences and samplers."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from minillm_distill.plugins import get_plugins

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
            distribution = f"{p.distribution} (built-in)" if p.builtin else p.distribution
            table.add_row(Text(p.name), Text(distribution), Text(p.version), status, Text(provides or "-"))
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


@app.command("check")
def check(
    ctx: typer.Context,
    names: list[str] | None = typer.Argument(
        None, help="Component or plugin names (default: every installed divergence, sampler, model family, benchmark)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (one object per check)."),
) -> None:
    """Property checks of installed divergences, samplers, model families and benchmarks, one line per plugin and
    check.

    Divergences: finite, non-negative, zero at equal distributions, finite gradients, output shape, over the
    option values each plugin declares (`Params.check_values`) or derives, with -inf logits and probabilities
    that underflow to 0. Samplers: the RolloutBatch contract on tiny models. Model families: a tiny model built,
    run, saved and loaded back; the prompt. Benchmarks: declarations, scorers, example_records parsed. Exit 4 when
    a check fails."""
    from rich.console import Console
    from rich.text import Text

    from minillm_distill.plugin_check.runner import run_checks, select_targets
    from minillm_distill.plugins import get_plugins

    ensure_plugin_commands(ctx)
    targets = select_targets(get_plugins(), list(names or []))
    console = Console(highlight=False, soft_wrap=True)
    results = []
    for r in run_checks(targets):
        results.append(r)
        if as_json:
            continue
        line = Text.assemble(
            ("PASS" if r.passed else "FAIL", "green" if r.passed else "bold red"),
            f"  {r.kind:<12} {r.name:<16} {r.check:<20} ",
            (f"{r.cases} option set{'s' if r.cases != 1 else ''}" if r.passed else (r.failure or ""), "dim"),
        )
        if r.notes:  # what the check could not look at
            line.append(f"  ({'; '.join(r.notes)})", style="yellow")
        console.print(line)
    failed = sorted({f"{r.kind} {r.name}" for r in results if not r.passed})
    if as_json:
        typer.echo(json.dumps({"results": [r.as_dict() for r in results], "failed": failed}, indent=2))
    else:
        checked = len({(r.kind, r.name) for r in results})
        summary = f"{len(results)} check{'s' if len(results) != 1 else ''} of {checked} plugin "
        summary += f"class{'es' if checked != 1 else ''}: "
        summary += f"{len(failed)} failed ({', '.join(failed)})" if failed else "all passed"
        console.print(Text(summary, style="red" if failed else "green"))
    if failed:
        raise typer.Exit(int(ExitCode.PLUGIN))


@app.command("new")
def new(
    name: str = typer.Argument(..., help="The plugin's distribution name, e.g. minillm-my-divergence."),
    directory: Path = typer.Argument(..., help="A new (or empty) folder to write the package into."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty."),
) -> None:
    """Write a plugin package to start from: a token-level divergence with an option, registered through the
    `minillm` entry-point group, and tests that use the test kit (every `plugins check` check, a value by hand, a
    training step). `pip install -e 'DIR[dev]' && pytest DIR` runs them."""
    from minillm_distill.plugin_template import write_plugin_template

    written = write_plugin_template(name, directory, force=force)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: pip install -e '{directory}[dev]' && pytest {directory}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="plugins")
