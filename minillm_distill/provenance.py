"""Where a result was measured: the command, the machine, the date and minillm's version, recorded when a results
page is written and printed at its head, so that every figure in ``docs/results/`` says where it came from."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> str:
    """CPU model and cores, memory, GPUs (when torch sees any), torch's version: one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores visible"]
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        parts.append(f"{pages * page_size / 2**30:.0f} GiB memory")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            parts.append(", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names)))
        else:
            parts.append("no GPU")
        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("minillm-distill")
    except PackageNotFoundError:
        return "0+unknown"


def provenance_record(command: str) -> dict[str, Any]:
    """What a results file stores about its own making (``provenance`` in its JSON)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {"command": command, "machine": machine(), "date": now.isoformat(), "version": version()}


def provenance_header(rec: dict[str, Any] | None) -> list[str]:
    """The line a results page opens with (after its title); a page from a file without a record says so."""
    if not rec:
        return ["_Written without a provenance record (by a minillm before 2026-12-06's results headers)._", ""]
    return [
        f"_Written by `{rec['command']}` on {rec['machine']}, {rec['date']} (minillm-distill {rec['version']})._",
        "",
    ]
