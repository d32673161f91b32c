"""Built-in benchmarks: the instruction-following evaluation sets of MiniLLM (Gu et al., 2023).

``dolly`` (DollyEval), ``self_inst`` (SelfInst), ``vicuna`` (VicunaEval), ``sni`` (S-NI test split) and
``unni`` (UnNI). Each reads its upstream format from ``--data PATH`` or, without it, downloads the data from
its real source through ``datasets.load_dataset``.
"""

from minillm_distill.api import hookimpl
from minillm_distill.builtins.benchmarks.dolly import DollyBenchmark
from minillm_distill.builtins.benchmarks.self_inst import SelfInstBenchmark
from minillm_distill.builtins.benchmarks.sni import SNIBenchmark
from minillm_distill.builtins.benchmarks.unni import UnNIBenchmark
from minillm_distill.builtins.benchmarks.vicuna import VicunaBenchmark

BUILTIN_BENCHMARKS = (DollyBenchmark, SelfInstBenchmark, VicunaBenchmark, SNIBenchmark, UnNIBenchmark)


@hookimpl
def register_benchmarks(register) -> None:
    for cls in BUILTIN_BENCHMARKS:
        register(cls)
