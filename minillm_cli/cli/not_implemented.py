"""Commands whose implementation lands in a later release say so plainly and exit 1."""

from __future__ import annotations

from minillm_cli.errors import NotImplementedYetError


def not_implemented(command: str, detail: str = "") -> NotImplementedYetError:
    return NotImplementedYetError(
        f"`minillm {command}` is not implemented yet" + (f": {detail}" if detail else ""),
        hint="see CHANGELOG.md for what this version can do",
    )
