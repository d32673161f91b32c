"""``metrics.jsonl``: one JSON object per optimizer step, written by rank 0 and flushed each line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from minillm_distill.io_errors import writing

HINT = "free space on that disk or choose another output.dir, then run the same command with --resume"


def _rows_up_to(path: Path, last_step: int) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows of ``path`` with ``step <= last_step``, one per step (the last written wins), in step order;
    and the line numbers that were not a JSON object with an integer ``step`` (a torn last line after a
    power loss or a full disk)."""
    by_step: dict[int, dict[str, Any]] = {}
    torn: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            torn.append(number)
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row["step"], bool):
            torn.append(number)
            continue
        if row["step"] <= last_step:
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)], torn


class MetricsWriter:
    def __init__(self, path: Path, *, enabled: bool, truncate_after: int | None = None) -> None:
        self.path = path
        self.enabled = enabled
        #: line numbers dropped on resume because they were not a complete row (shown as a warning)
        self.dropped_lines: list[int] = []
        if enabled and truncate_after is not None and path.exists():
            # on resume, drop lines past the checkpoint (and torn ones) so the file is exactly what an unbroken
            # run writes; the rewrite goes to a temporary file renamed into place, so a kill keeps the old one
            kept, self.dropped_lines = _rows_up_to(path, truncate_after)
            tmp = path.with_name(f".{path.name}.tmp")
            with writing(path, "metrics", cleanup=[tmp], hint=HINT):
                tmp.write_text("".join(json.dumps(k) + "\n" for k in kept), encoding="utf-8")
                os.replace(tmp, path)
        elif enabled and truncate_after is None:
            with writing(path, "metrics", hint=HINT):
                path.write_text("", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with writing(self.path, "metrics", hint=HINT), open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
