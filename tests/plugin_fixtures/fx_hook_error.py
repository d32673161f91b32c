"""A plugin whose hook registers one class and then raises: it must end up registering nothing."""

from fx_common import ZeroDivergence

from minillm_distill.api import hookimpl


class HalfRegistered(ZeroDivergence):
    name = "fixture_half_registered"


@hookimpl
def register_divergences(register):
    register(HalfRegistered)
    raise ValueError("fixture hook failed halfway")
