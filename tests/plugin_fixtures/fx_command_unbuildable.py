"""A plugin adding a command Typer cannot build (a nested list parameter): it must fail at start-up, alone,
instead of breaking every ``minillm`` command when Typer builds the Click group."""

from minillm_distill.api import hookimpl


@hookimpl
def register_commands(app):
    @app.command("fixture-unbuildable")
    def unbuildable(value: list[list[int]]) -> None:
        """Typer does not support nested list parameters."""
