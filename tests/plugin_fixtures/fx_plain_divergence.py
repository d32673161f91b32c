"""A divergence subclassing the bare ``Divergence`` base: neither token- nor sequence-level, so training cannot
use it (the README used to suggest ``Divergence`` for a sequence-level loss)."""

from __future__ import annotations

from minillm_distill.api import Divergence, hookimpl


class PlainDivergence(Divergence):
    name = "fixture_plain"
    level = "sequence"


@hookimpl
def register_divergences(register):
    register(PlainDivergence)
