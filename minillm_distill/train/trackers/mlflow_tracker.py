"""MLflow through ``mlflow`` (``mlflow-skinny`` is enough): its environment variables apply
(``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``, ...); experiment ``minillm`` unless they name one. The
resolved recipe is logged as flat parameters (``train.lr``); a resumed run continues the saved run id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minillm_distill.train.trackers import flat_config

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value


class MlflowTracker:
    name = "mlflow"

    def __init__(self, mlflow: Any, run: Any) -> None:
        self.mlflow, self.run = mlflow, run

    def log(self, metrics: dict[str, float], step: int) -> None:
        # metric names: MLflow allows letters, digits, _ - . / and spaces, which every minillm key uses
        self.mlflow.log_metrics(metrics, step=step, run_id=self.run.info.run_id)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run.info.run_id, "experiment_id": self.run.info.experiment_id}

    def close(self) -> None:
        self.mlflow.end_run()


def open_tracker(
    run_dir: Path, *, run_name: str, config: dict[str, Any], resume_step: int | None, saved: dict[str, Any] | None
) -> MlflowTracker:
    import mlflow

    if resume_step is not None and saved and saved.get("run_id"):
        return MlflowTracker(mlflow, mlflow.start_run(run_id=saved["run_id"]))
    if "MLFLOW_EXPERIMENT_NAME" not in os.environ and "MLFLOW_EXPERIMENT_ID" not in os.environ:
        mlflow.set_experiment("minillm")
    run = mlflow.start_run(run_name=run_name)
    params = {k: v[:MAX_PARAM_LENGTH] for k, v in flat_config(config).items()}
    mlflow.log_params(params)
    return MlflowTracker(mlflow, run)
