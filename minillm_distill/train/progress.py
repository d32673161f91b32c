"""A Rich progress bar for training (rank 0 only): step, loss, tokens/s, ETA."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StepProgress:
    def __init__(self, *, enabled: bool, total: int, start: int, description: str) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, loss="-", tps="-")

    def __enter__(self) -> StepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, row: dict[str, Any]) -> None:
        loss = row.get("loss")
        loss_s = f"{loss:.4f}" if isinstance(loss, float) and loss == loss else "nan"
        self.progress.update(self.task, completed=step, loss=loss_s, tps=f"{row.get('tokens_per_s', 0):.0f}")

    def log(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(message)
