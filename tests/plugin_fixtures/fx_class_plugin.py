"""A plugin whose entry point names a class (hooks as methods) and whose hook takes no argument."""

from fx_common import ZeroDivergence

from minillm_distill.api import hookimpl


class ClassPlugin:
    @hookimpl
    def register_samplers(self):
        """Takes none of the hook's arguments: pluggy allows that, so it must be called without them."""

    @hookimpl
    def register_divergences(self, register):
        register(ZeroDivergence)
