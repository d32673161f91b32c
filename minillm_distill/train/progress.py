"""Training progress on stderr (rank 0 only): a Rich progress bar on a terminal (step, loss, tokens/s, ETA);
to a file or pipe, where a bar shows nothing until the run ends, one plain line every ``total // 20`` steps
and at least once a minute, flushed as it is written."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

#: a plain line at least this often (seconds), however slow the steps
PLAIN_EVERY_S = 60.0


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class StepProgress:
    def __init__(self, *, enabled: bool, total: int, start: int, description: str) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.total, self.start, self.description = total, start, description
        self.every = max(1, (total - start) // 20)
        self.started = self.last_line = time.monotonic()
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
            disable=not enabled or self.plain,
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
        tps = f"{row.get('tokens_per_s', 0):.0f}"
        self.progress.update(self.task, completed=step, loss=loss_s, tps=tps)
        if not (self.enabled and self.plain):
            return
        now = time.monotonic()
        due = (step - self.start) % self.every == 0 or step >= self.total or now - self.last_line >= PLAIN_EVERY_S
        if not due:
            return
        elapsed = now - self.started
        done = step - self.start
        eta = _clock(elapsed / done * (self.total - step)) if done > 0 else "-"
        sys.stderr.write(
            f"{self.description} step {step}/{self.total} loss {loss_s} {tps} tok/s elapsed {_clock(elapsed)} "
            f"ETA {eta}\n"
        )
        sys.stderr.flush()
        self.last_line = now

    def log(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(message)
