"""Reading a local ``.json`` or JSON-lines file as rows, for training data (:mod:`minillm_distill.data.records`) and
benchmarks (:mod:`minillm_distill.benchmark`) alike; each caller turns :class:`RowsError` into its own error.

* ``.json``: a JSON list is one row per item; a file that is not one JSON document is read as JSON lines
  (``datasets`` accepts that too); any other JSON value is one row when ``single`` allows it, else an error.
* any other suffix: JSON lines, one value per line; blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RawRecord:
    """One row as read, before any checking, and where it came from (for error messages)."""

    data: Any
    where: str


@dataclass(frozen=True)
class Row:
    data: Any
    number: int
    """1-based position among the file's rows."""
    line: int | None
    """1-based line of a JSON-lines row; ``None`` for an item of a JSON list."""


class RowsError(Exception):
    """The file cannot be read as rows: ``problem`` says why; for a bad JSON line, ``line`` is where and
    ``number`` the row it would have been."""

    def __init__(self, problem: str, line: int | None = None, number: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.number = number


def json_rows(path: Path, *, single: bool = True) -> Iterator[Row]:
    """The rows of ``path`` (see the module docstring); raises :class:`RowsError` for an unreadable file, a line
    that is not JSON, or (``single=False``) a ``.json`` file holding one value that is not a list."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RowsError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise RowsError(f"cannot read it ({exc.strerror or exc})") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            pass  # maybe JSON lines under a .json name: read below
        else:
            if isinstance(data, list):
                yield from (Row(item, i + 1, None) for i, item in enumerate(data))
                return
            if not single:
                raise RowsError(f"expected a list of records, found a JSON {type(data).__name__}")
            yield Row(data, 1, None)
            return
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RowsError(f"not valid JSON ({exc.msg}, column {exc.colno})", line=number, number=count) from exc
        yield Row(row, count, number)
