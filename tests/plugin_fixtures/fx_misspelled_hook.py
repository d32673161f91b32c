"""A plugin with a misspelled hook name (singular ``register_divergence``)."""

from fx_common import ZeroDivergence

from minillm_distill.api import hookimpl


@hookimpl
def register_divergence(register):
    register(ZeroDivergence)
