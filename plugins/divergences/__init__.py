"""Built-in token-level divergences."""

from minillm_cli.api import hookimpl
from minillm_plugins.divergences.akl import AdaptiveKL
from minillm_plugins.divergences.fkl import ForwardKL
from minillm_plugins.divergences.jsd import GeneralizedJSD
from minillm_plugins.divergences.minillm import MiniLLM
from minillm_plugins.divergences.rkl import ReverseKL
from minillm_plugins.divergences.sft import CrossEntropy
from minillm_plugins.divergences.skew import SkewForwardKL, SkewReverseKL
from minillm_plugins.divergences.tvd import TotalVariation

BUILTIN_DIVERGENCES = (
    ForwardKL,
    ReverseKL,
    GeneralizedJSD,
    TotalVariation,
    SkewForwardKL,
    SkewReverseKL,
    AdaptiveKL,
    CrossEntropy,
    MiniLLM,
)


@hookimpl
def register_divergences(register) -> None:
    for cls in BUILTIN_DIVERGENCES:
        register(cls)
