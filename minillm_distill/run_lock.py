"""One run folder, one ``minillm distill``: the command holds an exclusive lock on ``RUN/.minillm.lock`` while it
trains, so a second distill on the same ``--output-dir`` stops at once (exit 2) instead of interleaving its
metrics, checkpoints and recipe with the first one's. The lock is the operating system's (``flock``): it goes
with the process, so a killed run never leaves a stale one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from minillm_distill.errors import UsageError
from minillm_distill.io_errors import resource_error

LOCK_NAME = ".minillm.lock"


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (creating the folder) for the ``with`` block; raise :class:`UsageError` naming the
    process that holds it. Where ``fcntl`` does not exist (Windows), no lock is taken."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = run_dir / LOCK_NAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        unwritable = resource_error(
            exc, path, "run folder's lock", hint="make the folder writable (or copy the run to a writable disk) and "
            "run the same command again",
        )  # fmt: skip
        if unwritable is not None:  # a read-only folder, a full disk: exit 5 like any failed write
            raise unwritable from exc
        raise UsageError(
            f"cannot lock the run folder {str(run_dir)!r}: {exc.strerror or exc}",
            hint=f"{LOCK_NAME} there must be a plain file minillm can write; choose another --output-dir",
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise UsageError(
                f"the run folder {str(run_dir)!r} is in use by another minillm distill (process {holder})",
                hint="wait for that run to finish (then --resume continues it), or choose another --output-dir",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
