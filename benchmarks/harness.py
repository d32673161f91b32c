"""Shared harness of the benchmarks: one thread, alternating A/B rounds, medians, per-pair ratios with spread.

A benchmark script runs each *round* of each system either in a fresh subprocess (:func:`run_child`: the child
prints one ``BENCH_RESULT {json}`` line, which is parsed back) or in this process (any callable returning a
dict). :func:`alternate` runs the systems A B A B ... so slow drifts of a noisy machine hit both alike, and
:func:`ratio_summary` reports the median of the per-pair ratios with their min-max and interquartile range.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_TAG = "BENCH_RESULT "
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DS_ACCELERATOR": "cpu",
}


def as_minillm_does() -> bool:
    """Give this process the host-memory setting the ``minillm`` command of the checkout on ``sys.path`` gives
    its own (``minillm_distill/host_memory.py``: huge pages for large CPU blocks; a checkout without that module, such
    as 533b980, sets nothing). Call first in a child that runs minillm's code, before torch exists; never in one
    that runs another system (TRL), which runs as its users run it."""
    try:
        from minillm_distill.host_memory import use_huge_pages
    except ImportError:
        return False
    return use_huge_pages()


def checkout_root(checkout: Path) -> Path:
    """``checkout`` itself when it holds ``minillm_distill/`` (the library, its built-in plugins and recipes); a
    checkout from before the rename (``minillm_cli/`` + ``plugins/``) cannot run these scripts' children: measure
    it with the scripts of its own commit."""
    checkout = checkout.resolve()
    if not (checkout / "minillm_distill" / "__init__.py").is_file():
        raise SystemExit(
            f"{checkout} has no minillm_distill/ package: it predates the rename of minillm_cli to minillm_distill; "
            "compare against a later commit, or run that commit's own benchmark script"
        )
    return checkout


def checkout_pythonpath(checkout: Path) -> str:
    """What to put first on a child's ``PYTHONPATH`` so that it runs ``checkout``'s minillm and its demo
    package (``packages/minillm-demo/src``), not the installed ones."""
    root = checkout_root(checkout)
    return os.pathsep.join([str(root), str(root / "packages" / "minillm-demo" / "src")])


def one_thread() -> None:
    """Pin this process to one thread (call before any heavy torch work; children get the env as well)."""
    for key, value in ONE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    import torch

    torch.set_num_threads(1)


def emit(result: dict[str, Any]) -> None:
    """The child side of :func:`run_child`: print the round's result as one tagged JSON line."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_child(
    args: Sequence[str], *, pythonpath: str | Path | None = None, timeout: float = 1800, cwd: str | Path | None = None
) -> dict[str, Any]:
    """Run ``python ARGS...`` in a fresh one-thread process and return the dict it :func:`emit`\\ ted.
    ``pythonpath`` is put first on the child's ``PYTHONPATH`` (to import another checkout of minillm)."""
    env = {**os.environ, **ONE_THREAD_ENV}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"benchmark child {' '.join(map(str, args))} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(RESULT_TAG) :])


def alternate(
    systems: dict[str, Callable[[int], dict[str, Any]]], rounds: int, *, log: Callable[[str], None] = print
) -> dict[str, list[dict[str, Any]]]:
    """Run ``rounds`` rounds of every system in turn (A B A B ...; each callable gets the round index) and
    return each system's list of round results."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for r in range(rounds):
        for name, run in systems.items():
            result = run(r)
            out[name].append(result)
            log(
                f"round {r + 1}/{rounds} {name}: "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in result.items() if isinstance(v, int | float))
            )
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """(first, third) quartile; with one value both are that value."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


@dataclass
class Summary:
    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    def __str__(self) -> str:
        return f"{self.median:.3f} (range {self.low:.3f}-{self.high:.3f}, IQR {self.q1:.3f}-{self.q3:.3f}, n={self.n})"


def summary(values: Sequence[float]) -> Summary:
    values = list(values)
    q1, q3 = quartiles(values)
    return Summary(statistics.median(values), min(values), max(values), q1, q3, len(values))


def ratio_summary(numerator: Sequence[float], denominator: Sequence[float]) -> Summary:
    """Summary of the per-pair ratios ``numerator[i] / denominator[i]`` (round i of each system)."""
    return summary([a / b for a, b in zip(numerator, denominator, strict=True)])


def machine_line() -> str:
    """What the figures were measured on (CPU model, cores, torch version, threads)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__}, torch threads {torch.get_num_threads()}"
