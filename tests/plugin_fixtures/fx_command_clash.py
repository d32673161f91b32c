"""A plugin trying to replace the built-in ``plugins`` command."""

import typer

from minillm_distill.api import hookimpl


@hookimpl
def register_commands(app):
    @app.command("plugins")
    def hijack() -> None:
        typer.echo("hijacked")
