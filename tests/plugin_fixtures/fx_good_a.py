"""A well-behaved plugin registering ``fixture_zero``."""

from fx_common import ZeroDivergence

from minillm_distill.api import hookimpl


@hookimpl
def register_divergences(register):
    register(ZeroDivergence)
