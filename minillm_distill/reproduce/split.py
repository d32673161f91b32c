"""A seeded split of Dolly-15k the way MiniLLM splits it: 500 test records, 500 validation records, the rest for
training.

The split is a permutation of the file's records drawn from ``random.Random(seed)``, so the same file and seed
give the same three files on any machine. ``split.json`` records the seed, the source file's sha256 and each
output file's sha256 and record count; a second call with the same inputs finds the files and checks them
instead of writing them again.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from minillm_distill.errors import ResourceError
from minillm_distill.gguf import file_sha256

TEST_RECORDS = 500  # the paper's DollyEval size
VALID_RECORDS = 500
PARTS = ("train", "valid", "test")
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Split:
    seed: int
    source: str
    source_sha256: str
    records: dict[str, int]
    sha256: dict[str, str]

    def path(self, folder: Path, part: str) -> Path:
        return folder / f"{part}.jsonl"


def _recorded(record: Path) -> Split | None:
    """The split ``split.json`` describes, or None when it is missing or unreadable (then it is written anew)."""
    try:
        return Split(**json.loads(record.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        return None


def _read_lines(source: Path) -> list[str]:
    try:
        lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ResourceError(f"cannot read the data file {source}", why=str(exc)) from exc
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ResourceError(f"{source} line {number} is not JSON", why=str(exc)) from exc
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or "response" not in row:
            raise ResourceError(
                f"{source} line {number} is not a Dolly record",
                hint="each line is an object with 'instruction', 'context' and 'response' (databricks-dolly-15k)",
            )
    return lines


def check_dolly(source: Path, *, test: int = TEST_RECORDS, valid: int = VALID_RECORDS) -> None:
    """The file reads as Dolly records, enough of them for the split (a :class:`ResourceError` otherwise)."""
    _enough(source, _read_lines(source), test, valid)


def _enough(source: Path, lines: list[str], test: int, valid: int) -> None:
    if len(lines) < test + valid + 1:
        raise ResourceError(
            f"{source} has {len(lines)} records, too few for {test} test and {valid} validation records",
            hint="use the full databricks-dolly-15k.jsonl",
        )


def split_dolly(
    source: Path, folder: Path, *, seed: int, test: int = TEST_RECORDS, valid: int = VALID_RECORDS
) -> Split:
    """Write ``folder/{train,valid,test}.jsonl`` and ``folder/split.json`` (or check them if they are there)."""
    source_sha = file_sha256(source)
    record = folder / SPLIT_FILE
    existing = _recorded(record)
    if existing is not None:
        same = existing.seed == seed and existing.source_sha256 == source_sha
        intact = all(
            existing.path(folder, p).is_file() and file_sha256(existing.path(folder, p)) == existing.sha256[p]
            for p in PARTS
        )
        if same and intact and existing.records["test"] == test and existing.records["valid"] == valid:
            return existing
    lines = _read_lines(source)
    _enough(source, lines, test, valid)
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    parts = {"test": order[:test], "valid": order[test : test + valid], "train": order[test + valid :]}
    folder.mkdir(parents=True, exist_ok=True)
    sha: dict[str, str] = {}
    for name in PARTS:
        path = folder / f"{name}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(lines[i] + "\n" for i in parts[name]), encoding="utf-8")
        tmp.replace(path)
        sha[name] = file_sha256(path)
    split = Split(
        seed=seed,
        source=source.name,
        source_sha256=source_sha,
        records={name: len(parts[name]) for name in PARTS},
        sha256=sha,
    )
    record.write_text(json.dumps(asdict(split), indent=2) + "\n", encoding="utf-8")
    return split
