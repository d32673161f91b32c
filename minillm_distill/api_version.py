"""The version of the plugin API, separate from minillm's release version.

``API_VERSION = (major, minor)``. What it covers and what is promised: ``docs/plugins/reference.md`` (written by
:mod:`minillm_distill.plugin_reference`). A plugin that needs something added in a minor version checks
``minillm_distill.api.API_VERSION >= (1, 1)``; a major version other than the one it was written for may have
removed or changed what it uses.
"""

from __future__ import annotations

#: (major, minor): a minor version only adds; a major version may remove what was deprecated before it
API_VERSION: tuple[int, int] = (1, 0)
