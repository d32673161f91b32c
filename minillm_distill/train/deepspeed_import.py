"""Import DeepSpeed without the MLflow import it does not need.

``deepspeed/__init__`` imports its autotuner, which imports ``mlflow`` when it is installed (the ``trackers``
and ``mlflow`` extras install ``mlflow-skinny``) only to log autotuning experiments, which minillm never
runs. That import alone took 3.9 s of DeepSpeed's 9.8 s in one measurement on the shared 2-core machine, in every
process that trains (each demo stage, each ``--nproc`` worker). :func:`import_deepspeed` hides ``mlflow``
during DeepSpeed's first import (the autotuner then records it as absent) and un-hides it right after, so
``train.report_to: [mlflow]`` imports the real package as usual. Nothing changes when ``mlflow`` is already
imported.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_deepspeed() -> ModuleType:
    """``import deepspeed``, without importing ``mlflow`` for DeepSpeed's autotuner."""
    if "deepspeed" in sys.modules:
        return sys.modules["deepspeed"]
    hide = "mlflow" not in sys.modules
    if hide:
        sys.modules["mlflow"] = None  # type: ignore[assignment]  # `import mlflow` raises ImportError
    try:
        import deepspeed
    finally:
        if hide and sys.modules.get("mlflow", 0) is None:
            del sys.modules["mlflow"]
    return deepspeed
