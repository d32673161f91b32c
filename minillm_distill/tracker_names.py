"""The experiment trackers ``train.report_to`` can name, and the libraries they need: read by the recipe schema
(a tracker whose library is missing is a recipe error) and by :mod:`minillm_distill.train.trackers` (which opens
them). Nothing here imports a tracker library."""

from __future__ import annotations

import importlib.util

EXTRA_HINT = "pip install 'minillm-distill[trackers]'"
# tracker name -> (module of minillm_distill.train.trackers, library it needs, pip package)
TRACKERS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("minillm_distill.train.trackers.tensorboard_tracker", "tensorboard", "tensorboard"),
    "wandb": ("minillm_distill.train.trackers.wandb_tracker", "wandb", "wandb"),
    "mlflow": ("minillm_distill.train.trackers.mlflow_tracker", "mlflow", "mlflow-skinny"),
}


def missing_library(name: str) -> str | None:
    """Why tracker ``name`` cannot run here (its library is not installed), or ``None``."""
    _, library, package = TRACKERS[name]
    if importlib.util.find_spec(library) is None:
        return (
            f"train.report_to has {name!r} but the {library!r} package is not installed "
            f"({EXTRA_HINT} or pip install {package})"
        )
    return None
