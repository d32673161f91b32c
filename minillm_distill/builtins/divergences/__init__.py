"""Built-in divergences: token-level ones and the sequence-level ``minillm``.

Registered by reference (recipe name -> ``"module:Class"``), so that ``minillm plugins`` and ``--help`` list
them without importing torch; each class is imported the first time a recipe uses it.
"""

from minillm_distill.api import hookimpl

BUILTIN_DIVERGENCES = {
    "fkl": "minillm_distill.builtins.divergences.fkl:ForwardKL",
    "rkl": "minillm_distill.builtins.divergences.rkl:ReverseKL",
    "jsd": "minillm_distill.builtins.divergences.jsd:GeneralizedJSD",
    "tvd": "minillm_distill.builtins.divergences.tvd:TotalVariation",
    "sfkl": "minillm_distill.builtins.divergences.skew:SkewForwardKL",
    "srkl": "minillm_distill.builtins.divergences.skew:SkewReverseKL",
    "akl": "minillm_distill.builtins.divergences.akl:AdaptiveKL",
    "sft": "minillm_distill.builtins.divergences.sft:CrossEntropy",
    "minillm": "minillm_distill.builtins.divergences.minillm:MiniLLM",
}


@hookimpl
def register_divergences(register) -> None:
    for name, target in BUILTIN_DIVERGENCES.items():
        register(target, name=name)
