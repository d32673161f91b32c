"""Built-in samplers."""

from minillm_cli.api import hookimpl
from minillm_plugins.samplers.dataset import DatasetSampler
from minillm_plugins.samplers.mixed import MixedSampler
from minillm_plugins.samplers.student import StudentSampler
from minillm_plugins.samplers.teacher import TeacherSampler
from minillm_plugins.samplers.teacher_mixed import TeacherMixedSampler

BUILTIN_SAMPLERS = (DatasetSampler, StudentSampler, TeacherSampler, MixedSampler, TeacherMixedSampler)


@hookimpl
def register_samplers(register) -> None:
    for cls in BUILTIN_SAMPLERS:
        register(cls)
