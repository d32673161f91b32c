"""Checking an output path has the right kind (file or folder) before a command does any work, so
``eval -o FILE`` or ``generate -o DIR`` is a usage error (exit 2), not a traceback after generation."""

from __future__ import annotations

from pathlib import Path

from minillm_distill.errors import UsageError


def _file_in_the_way(path: Path, option: str) -> None:
    """An existing ancestor of ``path`` that is a file makes every path under it impossible."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(
                    f"{option} {str(path)!r}: {str(parent)!r} is a file, so nothing can be written under it",
                    hint=f"choose another {option} path",
                )
            return


def check_output_dir(path: Path, option: str = "--output-dir") -> None:
    """``path`` is, or can become, a folder."""
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"{option} {str(path)!r} is a file; this option names a folder (results are written inside it)",
            hint=f"give a folder path to {option}, or remove the file",
        )
    _file_in_the_way(path, option)


def check_output_file(path: Path, option: str = "--output") -> None:
    """``path`` is, or can become, a regular file."""
    if path.is_dir():
        raise UsageError(
            f"{option} {str(path)!r} is a folder; this option names a file (JSONL lines are written to it)",
            hint=f"give a file path to {option}, e.g. {str(path / 'responses.jsonl')!r}",
        )
    _file_in_the_way(path, option)
