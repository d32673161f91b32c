"""Built-in divergences: token-level ones and the sequence-level ``minillm``.

Registered by reference (recipe name -> ``"module:Class"``), so that ``minillm plugins`` and ``--help`` list
them without importing torch; each class is imported the first time a recipe uses it.
"""

from minillm_cli.api import hookimpl

BUILTIN_DIVERGENCES = {
    "fkl": "minillm_plugins.divergences.fkl:ForwardKL",
    "rkl": "minillm_plugins.divergences.rkl:ReverseKL",
    "jsd": "minillm_plugins.divergences.jsd:GeneralizedJSD",
    "tvd": "minillm_plugins.divergences.tvd:TotalVariation",
    "sfkl": "minillm_plugins.divergences.skew:SkewForwardKL",
    "srkl": "minillm_plugins.divergences.skew:SkewReverseKL",
    "akl": "minillm_plugins.divergences.akl:AdaptiveKL",
    "sft": "minillm_plugins.divergences.sft:CrossEntropy",
    "minillm": "minillm_plugins.divergences.minillm:MiniLLM",
}


@hookimpl
def register_divergences(register) -> None:
    for name, target in BUILTIN_DIVERGENCES.items():
        register(target, name=name)
