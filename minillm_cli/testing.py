"""Deprecated alias of :mod:`minillm_distill.testing` (one release), for ``pytest_plugins =
["minillm_cli.testing"]`` in a plugin's tests: the same fixtures and helpers."""

from __future__ import annotations

import minillm_cli  # noqa: F401  (warns once)
from minillm_distill.testing import (  # noqa: F401  (the fixtures pytest collects from this plugin module)
    CliResult,
    _huge_page_switch_restored,
    cli,
    run_minillm,
)

__all__ = ["CliResult", "cli", "run_minillm"]
