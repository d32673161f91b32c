"""Process-wide CLI options (set by the top-level callback)."""

from __future__ import annotations

import os
import shlex


class CliState:
    debug: bool = os.environ.get("MINILLM_DEBUG", "") not in ("", "0")
    argv: list[str] = []  # the arguments main() was given (``--nproc`` re-runs them in each worker)


state = CliState()


def command_line() -> str:
    """The ``minillm`` command this process runs, as a user would type it (for results pages' headers)."""
    return shlex.join(["minillm", *state.argv])
