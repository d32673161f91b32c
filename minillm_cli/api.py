"""Deprecated alias of :mod:`minillm_distill.api` (one release): every name is the same object."""

from __future__ import annotations

from typing import Any

import minillm_cli  # noqa: F401  (warns once)
from minillm_distill import api as _api

__all__ = list(_api.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_api, name)


def __dir__() -> list[str]:
    return dir(_api)
