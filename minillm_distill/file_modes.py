"""Files minillm writes get the permissions the user's umask gives every other file.

Some writers (safetensors since 0.7) create their file through a private temporary file, mode 0600: a model a
user shares with their group, or serves from another account, was then readable by its owner only while the
config beside it was not. :func:`as_umask_allows` sets what those writers wrote to ``0666 & ~umask``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_LOCK = threading.Lock()


def _umask() -> int:
    with _LOCK:  # reading the umask means setting it: no other thread may create a file meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def as_umask_allows(*paths: str | Path) -> None:
    """Give every regular file at ``paths`` (a folder: every file inside it) mode ``0666 & ~umask``. Links are
    left alone."""
    mode = 0o666 & ~_umask()
    for path in map(Path, paths):
        files = [path] if not path.is_dir() else [p for p in path.rglob("*")]
        for f in files:
            if f.is_file() and not f.is_symlink():
                os.chmod(f, mode)
