"""Start-up time and memory of the quick ``minillm`` commands, this checkout against a baseline git ref.

Each run is a fresh ``python -m minillm_distill ARGS`` process (what the console script does), with
``OMP_NUM_THREADS=1``. The two systems alternate (A B A B ...) for every command; the table gives the median
wall time of each, the median of the per-pair ratios (baseline / this) with its min-max spread, and the median
peak RSS of the process. The baseline is ``git archive REF`` extracted to a temporary folder and put first on
``PYTHONPATH`` (same interpreter, same installed packages and entry points).

    .venv/bin/python benchmarks/startup.py                 # against main, 7 pairs per command
    .venv/bin/python benchmarks/startup.py --baseline HEAD~3 --pairs 11
    .venv/bin/python benchmarks/startup.py --no-baseline   # this checkout only
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [
    ["--version"],
    ["--help"],
    ["recipes", "list"],
    ["recipes", "show", "tiny/kd"],
    ["plugins"],
]


def run_once(args: list[str], pythonpath: str | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh ``python -m minillm_distill ARGS`` (run in the system's own
    folder: ``-m`` puts the working directory first on ``sys.path``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "minillm_distill", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=pythonpath or ROOT,
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"minillm {' '.join(args)} exited {proc.returncode}:\n{stderr}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def extract(ref: str, into: Path) -> Path:
    """``git archive REF`` into ``into`` (a ref from before the rename to ``minillm_distill`` is refused)."""
    data = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return harness.checkout_root(into)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git ref to compare against (default: main)")
    parser.add_argument("--no-baseline", action="store_true", help="measure this checkout only")
    parser.add_argument("--pairs", type=int, default=7, help="runs of each system per command (default: 7)")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="minillm-startup-") as tmp:
        systems: dict[str, str | None] = {"this": None}
        if not opts.no_baseline:
            systems = {opts.baseline: str(extract(opts.baseline, Path(tmp))), "this": None}
        for args in COMMANDS:  # warm the file cache once per system
            for path in systems.values():
                run_once(args, path)
        print(f"python {sys.version.split()[0]}, {opts.pairs} runs per system and command, OMP_NUM_THREADS=1")
        names = list(systems)
        header = f"{'command':<22}" + "".join(f"{n + ' s':>12}{n + ' MB':>12}" for n in names)
        if len(names) == 2:
            header += f"{'ratio':>8}{'spread':>14}"
        print(header)
        for args in COMMANDS:
            walls: dict[str, list[float]] = {n: [] for n in names}
            rss: dict[str, list[float]] = {n: [] for n in names}
            for _ in range(opts.pairs):
                for name, path in systems.items():  # alternate: A B A B ...
                    wall, peak = run_once(args, path)
                    walls[name].append(wall)
                    rss[name].append(peak)
            line = f"{' '.join(args):<22}"
            for n in names:
                line += f"{statistics.median(walls[n]):>12.3f}{statistics.median(rss[n]):>12.0f}"
            if len(names) == 2:
                ratios = [b / a for b, a in zip(walls[names[0]], walls[names[1]], strict=True)]
                line += f"{statistics.median(ratios):>7.1f}x{min(ratios):>7.1f}-{max(ratios):.1f}x"
            print(line)


if __name__ == "__main__":
    main()
