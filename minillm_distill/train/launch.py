"""``--nproc N``: re-run the same command as N data-parallel processes (torch elastic launcher), and
return the exit code the workers chose (not the launcher's generic 1)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minillm_distill.errors import ExitCode, MinillmError, PeerLost, RuntimeFailure

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

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


def record_error(err: MinillmError, *, rendered: bool) -> None:
    """Called by a worker that stops with ``err``: the launcher renders the one panel of a failure that only a
    rank other than 0 saw (rank 0 shows its own errors itself, ``rendered``)."""
    d = os.environ.get(EXIT_DIR_ENV)
    if not d:
        return
    record = {
        "title": err.title,
        "exit_code": int(err.exit_code),
        "message": err.message,
        "why": err.why,
        "hint": err.hint,
        "details": err.details,
        "rendered": rendered,
        "peer_lost": isinstance(err, PeerLost),
    }
    Path(d, f"error-rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(record), encoding="utf-8")


class WorkerError(MinillmError):
    """The error one worker stopped with, rendered by the launcher with that worker's title and exit code."""

    def __init__(self, rank: int, record: dict[str, Any]) -> None:
        super().__init__(
            f"rank {rank}: {record['message']}", why=record.get("why"), hint=record.get("hint"),
            details=record.get("details") or [],
        )  # fmt: skip
        self.title = str(record.get("title") or "Error")
        self.exit_code = ExitCode(int(record.get("exit_code", 1)))


def _unshown_worker_error(exit_dir: Path) -> WorkerError | None:
    """The first error a worker recorded when no worker's panel was shown (rank 0 ran on, or only lost its
    peer); None when a panel is already on screen or no worker recorded one."""
    records = {}
    for path in exit_dir.glob("error-rank*.json"):
        try:
            records[int(path.stem.removeprefix("error-rank"))] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    if any(r.get("rendered") for r in records.values()):
        return None
    causes = sorted(rank for rank, r in records.items() if not r.get("peer_lost"))
    return WorkerError(causes[0], records[causes[0]]) if causes else None


def launch(nproc: int, argv: list[str], run_dir: Path | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from minillm_distill.train.distributed import free_port

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
        # elastic logs each worker's failure and its SIGTERMs to the others; minillm reports failures itself
        elastic_log = logging.getLogger("torch.distributed.elastic")
        level = elastic_log.level
        elastic_log.setLevel(logging.CRITICAL)
        try:
            elastic_launch(config, sys.executable)("-m", "minillm_distill", *strip_nproc(argv))
            failed = False
        except ChildFailedError as err:
            failed = True
            killed = _killed_by_signal(err, Path(exit_dir))
            if killed is not None:
                raise _signal_failure(*killed, argv, run_dir) from None
            unshown = _unshown_worker_error(Path(exit_dir))
            if unshown is not None:
                raise unshown from None
        finally:
            os.environ.pop(EXIT_DIR_ENV, None)
            elastic_log.setLevel(level)
            if run_dir is not None:
                _after_workers_stopped(run_dir)
        codes = [int(p.read_text()) for p in Path(exit_dir).glob("rank-*")]
    if codes:
        return max(codes, key=lambda c: (c != 0, c))
    return 1 if failed else 0


def _after_workers_stopped(run_dir: Path) -> None:
    """Every worker has stopped: a save one of them was writing when another failed (a full disk on one rank
    while the launcher stops the rest) leaves a partial ``.tmp-step-N`` that no worker can remove; do it here."""
    from minillm_distill.train.checkpoint import remove_partial_checkpoints

    remove_partial_checkpoints(run_dir)


def _killed_by_signal(err: ChildFailedError, exit_dir: Path) -> tuple[int, str] | None:
    """(rank, signal name) of the first worker that died by a signal; None if none did.

    The launcher SIGTERMs the survivors once one worker failed, so a SIGTERM counts only when no other signal
    killed a worker and no worker recorded a failure of its own (in ``exit_dir``: that worker's error is the
    cause, and it has already printed it); a worker that recorded its exit code did not die by a signal.
    """
    recorded = {int(p.name.removeprefix("rank-")): p.read_text().strip() for p in exit_dir.glob("rank-*")}
    own_failure = any(code not in ("", "0") for code in recorded.values())
    deaths = [
        (f.exitcode == -signal.SIGTERM, f.timestamp, rank, f.exitcode)
        for rank, f in err.failures.items()
        if f.exitcode < 0 and rank not in recorded and not (own_failure and f.exitcode == -signal.SIGTERM)
    ]
    if not deaths:
        return None
    *_, rank, exitcode = min(deaths)
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return rank, name


def _signal_failure(rank: int, signal_name: str, argv: list[str], run_dir: Path | None) -> RuntimeFailure:
    from minillm_distill.run_layout import latest_checkpoint, resume_command

    latest = latest_checkpoint(run_dir) if run_dir is not None else None
    why = {
        "SIGKILL": "killed from outside (the kernel's out-of-memory killer, a scheduler, or `kill -9`)",
        "SIGSEGV": "a crash inside native code",
        "SIGTERM": "asked to stop from outside (a scheduler or `kill`)",
    }.get(signal_name, "stopped by a signal from outside")
    if latest is not None:
        hint = f"the latest checkpoint ({latest}) can be resumed: {resume_command(argv, run_dir)}"
    else:
        hint = "no checkpoint was written yet: run the command again (`minillm distill RECIPE --resume` once one is)"
    return RuntimeFailure(
        f"worker rank {rank} was killed by {signal_name}; the other workers stopped with it",
        why=why,
        hint=hint,
    )
