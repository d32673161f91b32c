"""minillm's own tests run with the plugin test kit, like any plugin's: offline, and the ``cli`` fixture
(:mod:`minillm_distill.testing`). Shared paths and the subprocess runner are in ``helpers.py``.

``unit/`` mirrors the package (``unit/train/`` tests ``minillm_distill/train/``, ``unit/builtins/`` the built-in
plugins, top-level modules at ``unit/``); ``integration/`` runs the CLI end to end, and every test there is
marked ``slow`` (left out by ``make test-fast``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["minillm_distill.testing"]

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.slow)
