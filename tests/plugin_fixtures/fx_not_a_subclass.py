"""A plugin registering a class that does not subclass the divergence base."""

from minillm_distill.api import hookimpl


class NotADivergence:
    name = "fixture_not_a_divergence"


@hookimpl
def register_divergences(register):
    register(NotADivergence)
