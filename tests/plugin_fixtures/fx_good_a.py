"""A well-behaved plugin registering ``fixture_zero``."""

from fx_common import ZeroDivergence

from minillm_cli.api import hookimpl


@hookimpl
def register_divergences(register):
    register(ZeroDivergence)
