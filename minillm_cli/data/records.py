"""Prompt/response records from a hub id or a local JSON/JSONL file, read through ``datasets``.

Field names follow Dolly and Alpaca: ``instruction``; ``context`` or ``input``; ``response`` or ``output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minillm_cli.errors import ResourceError

INPUT_FIELDS = ("context", "input")
RESPONSE_FIELDS = ("response", "output")


@dataclass(frozen=True)
class Record:
    instruction: str
    input: str
    response: str | None


def _first(row: dict, names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in row and row[n] is not None:
            return str(row[n])
    return None


def load_records(source: str, *, split: str = "train", require_response: bool = True) -> list[Record]:
    """Read every record; a missing field is an error naming the record (line for JSONL)."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(source)
    try:
        if path.suffix in (".json", ".jsonl"):
            if not path.exists():
                raise ResourceError(f"data file not found: {source}", hint="check data.train / data.valid")
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(source, split=split)
    except ResourceError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable/unknown sources
        raise ResourceError(
            f"cannot read data from {source!r}",
            why=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            hint="give a local .json/.jsonl file with instruction/response fields, or a hub dataset id that is "
            "available offline",
        ) from exc
    # column-wise: iterating a Dataset row by row costs ~40 us a row in Python
    columns = ds.to_dict()
    records: list[Record] = []
    for i in range(ds.num_rows):
        row = {name: values[i] for name, values in columns.items()}
        where = f"{source}, record {i + 1}" + (f" (line {i + 1})" if path.suffix == ".jsonl" else "")
        instruction = _first(row, ("instruction", "prompt"))
        if instruction is None:
            raise ResourceError(f"{where}: missing field 'instruction'", hint="each record needs an instruction")
        response = _first(row, RESPONSE_FIELDS)
        if require_response and response is None:
            raise ResourceError(
                f"{where}: missing field 'response' (or 'output')",
                hint="this sampler trains on gold responses; every record needs one",
            )
        records.append(Record(instruction, _first(row, INPUT_FIELDS) or "", response))
    if not records:
        raise ResourceError(f"no records in {source!r}")
    return records
