"""The old import name of minillm, kept for one release: ``minillm_cli`` is now ``minillm_distill``.

``import minillm_cli``, ``from minillm_cli import hookimpl``, ``minillm_cli.api`` and ``minillm_cli.testing``
still work and warn (DeprecationWarning); they hand out the very objects of ``minillm_distill``, so a plugin
written against the old name keeps working unchanged. Other internal modules are not aliased.
"""

from __future__ import annotations

import warnings
from typing import Any

warnings.warn(
    "the import name minillm_cli is now minillm_distill (minillm_cli goes in the next release); "
    "replace `minillm_cli` with `minillm_distill` in your imports",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    import minillm_distill

    return getattr(minillm_distill, name)
