"""Built-in samplers."""

from minillm_cli.hookspecs import hookimpl
from minillm_plugins.samplers.dataset import DatasetSampler

BUILTIN_SAMPLERS = (DatasetSampler,)


@hookimpl
def register_samplers(register) -> None:
    for cls in BUILTIN_SAMPLERS:
        register(cls)
