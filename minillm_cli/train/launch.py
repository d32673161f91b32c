"""``--nproc N``: re-run the same command as N data-parallel processes (torch elastic launcher), and
return the exit code the workers chose (not the launcher's generic 1)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

EXIT_DIR_ENV = "MINILLM_EXIT_DIR"


def strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def record_exit_code(code: int) -> None:
    """Called by a worker before it exits."""
    d = os.environ.get(EXIT_DIR_ENV)
    if d:
        Path(d, f"rank-{os.environ.get('RANK', '0')}").write_text(str(code), encoding="utf-8")


def launch(nproc: int, argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from minillm_cli.train.distributed import free_port

    with tempfile.TemporaryDirectory(prefix="minillm-exit-") as exit_dir:
        os.environ[EXIT_DIR_ENV] = exit_dir
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=nproc,
            rdzv_backend="c10d",
            rdzv_endpoint=f"127.0.0.1:{free_port()}",
            run_id=f"minillm-{os.getpid()}",
            max_restarts=0,
            monitor_interval=0.5,
        )
        try:
            elastic_launch(config, sys.executable)("-m", "minillm_cli", *strip_nproc(argv))
            failed = False
        except ChildFailedError:
            failed = True
        finally:
            os.environ.pop(EXIT_DIR_ENV, None)
        codes = [int(p.read_text()) for p in Path(exit_dir).glob("rank-*")]
    if codes:
        return max(codes, key=lambda c: (c != 0, c))
    return 1 if failed else 0
