"""A plugin that registers a divergence, adds a command, then raises in ``register_commands``."""

from fx_common import ZeroDivergence

from minillm_distill.api import hookimpl


class CommandPluginDivergence(ZeroDivergence):
    name = "fixture_from_command_plugin"


@hookimpl
def register_divergences(register):
    register(CommandPluginDivergence)


@hookimpl
def register_commands(app):
    @app.command("fixture-half-added")
    def half_added() -> None:
        """Must be rolled back."""

    raise RuntimeError("fixture register_commands failed")
