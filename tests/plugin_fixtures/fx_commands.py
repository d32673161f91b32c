"""A plugin adding a working command ``fixture-hello``."""

import typer

from minillm_distill.api import hookimpl


@hookimpl
def register_commands(app):
    @app.command("fixture-hello")
    def fixture_hello(name: str = typer.Option("world", "--name")) -> None:
        """Greets (test fixture)."""
        typer.echo(f"hello {name} from a fixture plugin")
