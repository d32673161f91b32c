"""TensorBoard through ``torch.utils.tensorboard``: event files in ``DIR/tensorboard``; a resumed run writes
to the same folder, dropping (``purge_step``) what was logged after the checkpoint it resumes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOG_DIR = "tensorboard"


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, log_dir: Path, config: dict[str, Any], resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)
        if resume_step is None:
            text = "```json\n" + json.dumps(config, indent=2) + "\n```"
            self.writer.add_text("recipe", text, global_step=0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def state(self) -> dict[str, Any]:
        return {"log_dir": str(self.log_dir)}

    def close(self) -> None:
        self.writer.close()


def open_tracker(
    run_dir: Path, *, run_name: str, config: dict[str, Any], resume_step: int | None, saved: dict[str, Any] | None
) -> TensorBoardTracker:
    return TensorBoardTracker(run_dir / LOG_DIR, config, resume_step)
