"""minillm: knowledge distillation of generative language models.

Third-party plugins import :data:`hookimpl` from here and the base classes from
:mod:`minillm_cli.api`.
"""

from importlib.metadata import PackageNotFoundError, version

from minillm_cli.hookspecs import hookimpl

try:
    __version__ = version("minillm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "hookimpl"]
