"""Another well-behaved plugin that also registers ``fixture_zero``: a duplicate-name conflict with fx_good_a."""

from fx_common import ZeroDivergence

from minillm_distill.api import hookimpl


class AlsoZero(ZeroDivergence):
    description = "same name as fx_good_a's (test fixture)"


@hookimpl
def register_divergences(register):
    register(AlsoZero)
