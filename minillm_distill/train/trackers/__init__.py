"""Experiment trackers (``train.report_to``): every metrics row goes to each tracker at its step, the resolved
recipe is the run's config, rank 0 only. Each tracker is a small module here using its own library:
TensorBoard (``torch.utils.tensorboard``), Weights & Biases (``wandb``), MLflow (``mlflow``). The ids of the
runs they open are kept in ``DIR/trackers.json``, so ``--resume`` continues the same tracker runs."""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from minillm_distill import run_layout
from minillm_distill.tracker_names import EXTRA_HINT, TRACKERS, missing_library

STATE_FILE = run_layout.TRACKERS  # trackers.json, in the run folder

START_HINTS = {
    "tensorboard": "check that the run folder is writable",
    "wandb": "log in (wandb login / WANDB_API_KEY), or set WANDB_MODE=offline and sync later",
    "mlflow": "check MLFLOW_TRACKING_URI (a file: store needs MLFLOW_ALLOW_FILE_STORE=true with MLflow 3)",
}


class Tracker(Protocol):
    name: str

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def state(self) -> dict[str, Any]:
        """What resuming needs (a run id), saved in ``trackers.json``."""
        ...

    def close(self) -> None: ...


def numeric_metrics(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics row, nested mappings flattened to ``a/b`` keys; ``step`` left out
    (it is the step), booleans as 0/1."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numeric_metrics(value, f"{name}/"))
        elif name == "step" or not isinstance(value, int | float):
            continue
        elif math.isfinite(float(value)):
            out[name] = float(value)
    return out


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train.lr": "0.001", ...}``: a nested recipe as flat string parameters (MLflow)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_config(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if not isinstance(value, str) else value
    return out


class TrackerList:
    """The trackers of one run (empty on ranks other than 0, or when none is asked for)."""

    def __init__(self, trackers: list[Tracker], state_path: Path | None = None) -> None:
        self.trackers = trackers
        self.state_path = state_path
        self._save_state()

    def log(self, row: Mapping[str, Any]) -> None:
        if not self.trackers:
            return
        metrics = numeric_metrics(row)
        for tracker in self.trackers:
            tracker.log(metrics, int(row["step"]))

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []

    def _save_state(self) -> None:
        if self.state_path is not None and self.trackers:
            state = {t.name: t.state() for t in self.trackers}
            self.state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def open_trackers(
    names: list[str], run_dir: Path, *, run_name: str, config: dict[str, Any], resume_step: int | None, enabled: bool
) -> TrackerList:
    """Start (or, with ``resume_step``, continue) each tracker of ``names``; nothing when not ``enabled``."""
    if not enabled or not names:
        return TrackerList([])
    from minillm_distill.errors import ResourceError

    state_path = run_dir / STATE_FILE
    saved: dict[str, Any] = {}
    if resume_step is not None and state_path.is_file():
        try:
            saved = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
    trackers: list[Tracker] = []
    for name in names:
        problem = missing_library(name)
        if problem is not None:
            raise ResourceError(problem, hint=f"install it ({EXTRA_HINT}), or drop {name!r} from train.report_to")
        module = importlib.import_module(TRACKERS[name][0])
        previous = saved.get(name) if isinstance(saved.get(name), dict) else None
        try:
            trackers.append(
                module.open_tracker(run_dir, run_name=run_name, config=config, resume_step=resume_step, saved=previous)
            )
        except Exception as exc:  # each library has its own errors (no login, unreachable server, ...)
            for started in trackers:
                started.close()
            raise ResourceError(
                f"cannot start the {name} tracker (train.report_to)",
                why=(str(exc).splitlines() or [type(exc).__name__])[0],
                hint=START_HINTS[name],
            ) from exc
    return TrackerList(trackers, state_path)
