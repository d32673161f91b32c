"""A plugin whose hook asks for an argument the hookspec does not have."""

from minillm_distill.api import hookimpl


@hookimpl
def register_divergences(registry):
    raise AssertionError("never called")
