"""Write failures (full disk, read-only or unwritable folder, quota) turned into one clear error.

Every place minillm writes run output wraps the write in :func:`writing`: on such a failure the partial
temporary files it names are removed (what was complete before stays as it was) and a
:class:`~minillm_distill.errors.ResourceError` (exit 5) names the path and the cause. torch and safetensors report
these failures without an ``errno`` (``RuntimeError: ... unexpected pos ...``, ``SafetensorError: ... os error
28``), so they are recognised by message, and the cause is read from the file system when the message lacks it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from minillm_distill.errors import MinillmError, ResourceError

CAUSES: dict[int, str] = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
}
# how torch's zip writer and the safetensors writer report a failed write (no errno attached)
_TORCH_WRITE = ("pytorchstreamwriter failed writing file", "unexpected pos", "iostream error", "file write failed")
_OS_ERROR_CODE = re.compile(r"os error (\d+)")
_LOW_SPACE = 16 * 2**20  # a torch write failing with less free than this on its disk ran out of space


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def probe_cause(path: Path) -> str | None:
    """What the file system of ``path`` says: read-only, or (almost) no free space; None if neither."""
    try:
        st = os.statvfs(_existing(path))
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return CAUSES[errno.EROFS]
    if st.f_bavail * st.f_frsize < _LOW_SPACE:
        return CAUSES[errno.ENOSPC]
    return None


def write_failure(exc: BaseException, path: Path) -> str | None:
    """The cause ("no space left on device", ...) if ``exc`` is a failed write under ``path``, else None."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in CAUSES:
            return CAUSES[e.errno]
        text = str(e).lower()
        m = _OS_ERROR_CODE.search(text)
        if m and int(m.group(1)) in CAUSES:
            return CAUSES[int(m.group(1))]
        for code, cause in CAUSES.items():
            if code in (errno.ENOSPC, errno.EROFS, errno.EDQUOT) and cause in text:
                return cause
        if isinstance(e, RuntimeError) and any(s in text for s in _TORCH_WRITE):
            return probe_cause(path) or "the write failed"
    return None


def remove(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with suppress(OSError):
                p.unlink(missing_ok=True)


def _why(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in CAUSES:
            exc = e
            break
    first = (str(exc).splitlines() or [""])[0].strip()
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


DEFAULT_HINT = "free space on that disk or make the folder writable (or choose another one), then run the command again"


def resource_error(
    exc: BaseException, path: str | Path, what: str, *, hint: str | None = None, cleanup: Iterable[Path] = ()
) -> ResourceError | None:
    """The ResourceError for ``exc`` if it is a failed write under ``path`` (removing ``cleanup``), else None."""
    path = Path(path)
    cause = write_failure(exc, path)
    if cause is None:
        return None
    remove(cleanup)
    return ResourceError(f"cannot write the {what} to {path}: {cause}", why=_why(exc), hint=hint or DEFAULT_HINT)


@contextmanager
def writing(path: str | Path, what: str, *, cleanup: Iterable[Path] = (), hint: str | None = None) -> Iterator[None]:
    """Run a write of ``what`` (e.g. "checkpoint step-4") to ``path``; a failed write removes ``cleanup`` (the
    partial temporary files) and raises :class:`ResourceError` naming ``path`` and the cause. Any other error
    (a plugin's state that cannot be saved, an interrupt) removes ``cleanup`` too and propagates unchanged."""
    try:
        yield
    except MinillmError:
        remove(cleanup)
        raise
    except Exception as exc:
        err = resource_error(exc, path, what, hint=hint, cleanup=cleanup)
        if err is None:
            remove(cleanup)
            raise
        raise err from exc
    except BaseException:
        remove(cleanup)
        raise
