"""minillm: knowledge distillation of generative language models.

Third-party plugins import :data:`hookimpl` from here and the base classes from
:mod:`minillm_distill.api`. Both names are resolved on first use, so that importing the package (which every
``minillm`` command does first) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        from minillm_distill.hookspecs import hookimpl

        return hookimpl
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("minillm-distill")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from minillm_distill.hookspecs import hookimpl

    __version__: str
