"""Commands whose implementation has not landed yet: each says so plainly and exits 1, no fake output.

A command moves out of here into its own module when it is implemented.
"""

from __future__ import annotations

import typer

from minillm_cli.cli.not_implemented import not_implemented

PENDING = {
    "eval": "Evaluate a model on a benchmark (Rouge-L, exact match).",
    "generate": "Batched sampling from a model.",
    "export": "Turn a checkpoint into a Hugging Face folder.",
}


def _make(name: str, help_text: str):  # noqa: ANN202 - a Typer callback
    def command(ctx: typer.Context) -> None:
        del ctx
        raise not_implemented(name)

    # parentheses, not [brackets]: the help is rendered as Rich markup, which would swallow "[...]"
    command.__doc__ = f"{help_text} (not implemented yet)"
    return command


def register(app: typer.Typer) -> None:
    for name, help_text in PENDING.items():
        app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
            _make(name, help_text)
        )
