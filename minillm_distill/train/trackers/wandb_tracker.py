"""Weights & Biases through ``wandb``: its environment variables apply (``WANDB_MODE=offline``,
``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_DIR``, ``WANDB_API_KEY``, ...); project ``minillm`` and the
recipe's name unless they say otherwise; files under the run folder unless ``WANDB_DIR`` is set. A resumed
run continues the saved run id (``resume="allow"``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class WandbTracker:
    name = "wandb"

    def __init__(self, run: Any) -> None:
        self.run = run

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run.id, "project": self.run.project}

    def close(self) -> None:
        self.run.finish()


def open_tracker(
    run_dir: Path, *, run_name: str, config: dict[str, Any], resume_step: int | None, saved: dict[str, Any] | None
) -> WandbTracker:
    import wandb

    kwargs: dict[str, Any] = {"config": config}
    if "WANDB_PROJECT" not in os.environ:
        kwargs["project"] = (saved or {}).get("project") or "minillm"
    if "WANDB_NAME" not in os.environ:
        kwargs["name"] = run_name
    if "WANDB_DIR" not in os.environ:
        kwargs["dir"] = str(run_dir)
    if resume_step is not None and saved and saved.get("run_id"):
        kwargs.update(id=saved["run_id"], resume="allow")
        kwargs["config"] = None  # the run keeps the config it started with
    return WandbTracker(wandb.init(**kwargs))
