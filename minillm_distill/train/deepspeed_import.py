"""Import DeepSpeed without the MLflow import it does not need.

``deepspeed/__init__`` imports its autotuner, which imports ``mlflow`` when it is installed (the ``trackers``
and ``mlflow`` extras install ``mlflow-skinny``) only to log autotuning experiments, which minillm never
runs. That import alone took 3.9 s of DeepSpeed's 9.8 s in one measurement on the shared 2-core machine, in every
process that trains (each demo stage, each ``--nproc`` worker). :func:`import_deepspeed` hides ``mlflow``
during DeepSpeed's first import (the autotuner then records it as absent) and un-hides it right after, so
``train.report_to: [mlflow]`` imports the real package as usual. Nothing changes when ``mlflow`` is already
imported.

:func:`quiet_deepspeed` keeps DeepSpeed's "Setting accelerator to CPU" warning off the screen: it is printed to
stdout (mixing into a command's output) in every process on a machine without a GPU, where CPU is the expected
choice. Its other messages are untouched.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType

#: the start of DeepSpeed's message when it finds no GPU (deepspeed/accelerator/real_accelerator.py)
CPU_FALLBACK = "Setting accelerator to CPU"
#: DeepSpeed's line for an update its ZeRO optimizer skipped: minillm logs its own ("update skipped") and marks
#: the step ``skipped`` in metrics.jsonl
OVERFLOW = "OVERFLOW! Skipping step"


def _not_cpu_fallback(record: logging.LogRecord) -> bool:
    text = str(record.msg)
    return not text.startswith(CPU_FALLBACK) and OVERFLOW not in text


def quiet_deepspeed() -> None:
    """Drop DeepSpeed's CPU-fallback warning (a filter on its logger; DeepSpeed need not be imported yet)."""
    logger = logging.getLogger("DeepSpeed")
    if _not_cpu_fallback not in logger.filters:
        logger.addFilter(_not_cpu_fallback)


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
