"""The root command group, which adds the plugins' commands only when they are needed.

Loading plugins imports every plugin module; ``minillm --version`` and minillm's own commands do not need them.
They are added the first time the root's commands are listed (``--help``, ``minillm plugins``) or a command name
is not one of minillm's own.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup


class RootGroup(TyperGroup):
    _plugin_commands_added = False

    def add_plugin_commands(self) -> None:
        """Run every plugin's ``register_commands`` hook (once) and add what they register."""
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        from minillm_distill.plugins import add_plugin_commands, get_plugins

        app = typer.Typer()
        app.callback()(lambda: None)  # a group even with one command
        add_plugin_commands(app, get_plugins(), taken=list(self.commands))
        if app.registered_commands or app.registered_groups:
            for name, command in typer.main.get_group(app).commands.items():
                self.add_command(command, name)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        self.add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self.add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command


def ensure_plugin_commands(ctx: typer.Context) -> None:
    """Make sure the plugins' commands were added (and their failures recorded), e.g. for ``minillm plugins``."""
    root = ctx.find_root().command
    if isinstance(root, RootGroup):
        root.add_plugin_commands()
