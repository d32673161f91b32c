"""Every option's help text reaches ``--help`` as written: the CLI renders help with rich markup, where an
unescaped ``[kd,minillm]`` is read as a style tag and silently dropped (``minillm demo --help`` once showed
``methods=,`` for ``methods=[kd,minillm]``)."""

from __future__ import annotations

import re
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from minillm_distill.cli.main import build_app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(argv path, command) of every command under ``group`` (typer vendors its click: duck-typed here)."""
    out = [(path, group)]
    if hasattr(group, "list_commands"):
        ctx = group.context_class(group)
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out.extend(_commands(sub, (*path, name)))
    return out


def _flat(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text)


def test_bracketed_help_text_is_shown_verbatim():
    bracketed = [
        (path, p.help)
        for path, command in _commands(get_command(build_app()))
        for p in command.params
        if p.param_type_name == "option" and p.help and "[" in p.help
    ]
    assert any(path == ("demo",) for path, _ in bracketed)  # the --set example list
    for path, text in bracketed:
        result = CliRunner().invoke(build_app(), [*path, "--help"], env={"COLUMNS": "1000"})
        assert result.exit_code == 0, result.output
        assert _flat(text.replace("\\[", "[")) in _flat(result.output), f"{' '.join(path)} --help lost {text!r}"
