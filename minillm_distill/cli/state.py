"""Process-wide CLI options (set by the top-level callback)."""

from __future__ import annotations

import os


class CliState:
    debug: bool = os.environ.get("MINILLM_DEBUG", "") not in ("", "0")
    argv: list[str] = []  # the arguments main() was given (``--nproc`` re-runs them in each worker)


state = CliState()
