"""Built-in samplers.

Registered by reference (recipe name -> ``"module:Class"``), so that ``minillm plugins`` and ``--help`` list
them without importing torch; each class is imported the first time a recipe uses it.
"""

from minillm_distill.api import hookimpl

BUILTIN_SAMPLERS = {
    "dataset": "minillm_distill.builtins.samplers.dataset:DatasetSampler",
    "student": "minillm_distill.builtins.samplers.student:StudentSampler",
    "teacher": "minillm_distill.builtins.samplers.teacher:TeacherSampler",
    "mixed": "minillm_distill.builtins.samplers.mixed:MixedSampler",
    "teacher_mixed": "minillm_distill.builtins.samplers.teacher_mixed:TeacherMixedSampler",
}


@hookimpl
def register_samplers(register) -> None:
    for name, target in BUILTIN_SAMPLERS.items():
        register(target, name=name)
