"""``metrics.jsonl``: one JSON object per optimizer step, written by rank 0 and flushed each line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsWriter:
    def __init__(self, path: Path, *, enabled: bool, truncate_after: int | None = None) -> None:
        self.path = path
        self.enabled = enabled
        if enabled and truncate_after is not None and path.exists():
            # on resume, drop lines past the checkpoint so the file is exactly what an unbroken run writes
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= truncate_after
            ]
            path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        elif enabled and truncate_after is None:
            path.write_text("", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
