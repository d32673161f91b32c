"""DeepSpeed is imported without MLflow (its autotuner's optional import, seconds of start-up per training
process), and MLflow stays importable afterwards for ``train.report_to: [mlflow]``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

CHILD = """
import json, sys
from minillm_distill.train.deepspeed_import import import_deepspeed
import_deepspeed()
import deepspeed.autotuning.autotuner as autotuner
hidden = "mlflow" not in sys.modules
import mlflow
print(json.dumps({"hidden": hidden, "has_mlflow": autotuner.has_mlflow, "real": hasattr(mlflow, "__version__")}))
"""


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
@pytest.mark.slow
def test_deepspeed_imports_without_mlflow_and_mlflow_still_imports():
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"hidden": True, "has_mlflow": False, "real": True}
