"""Prompt/response records from a local JSON/JSONL file or a hub id: the one reader of training data
(``distill`` and ``recipes validate`` both use it).

A record is either

* Dolly/Alpaca fields: ``instruction`` (or ``prompt``); ``context`` or ``input``; ``response`` or ``output``;
* a conversation, as the Hugging Face ecosystem writes it: ``messages``, a list of ``{role, content}`` turns
  (roles ``system``, ``user``, ``assistant``). The last turn, when it is the assistant's, is the response;
  the turns before it are the prompt (rendered through the tokenizer's chat template).

Every value is checked: a field of the wrong type (``"instruction": 5``, ``"response": ["a"]``) or a malformed
conversation is a :class:`DataRecordError` naming the file and line (exit code 3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from minillm_distill.errors import RecipeError, ResourceError
from minillm_distill.json_rows import RowsError, json_rows

INSTRUCTION_FIELDS = ("instruction", "prompt")
INPUT_FIELDS = ("context", "input")
RESPONSE_FIELDS = ("response", "output")
ROLES = ("system", "user", "assistant")

FIELDS_HINT = (
    'each record is {"instruction": "...", "input": "...", "response": "..."} (strings; input optional) or '
    '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
)


class DataRecordError(RecipeError):
    """A training record whose values have the wrong type or shape (exit code 3)."""

    title = "Invalid data record"


Turn = tuple[str, str]
"""(role, content) of one conversation turn."""


@dataclass(frozen=True)
class Record:
    instruction: str
    input: str
    response: str | None
    messages: tuple[Turn, ...] = ()
    """A conversation record: the prompt's turns (everything before the response); empty otherwise."""
    where: str = field(default="", compare=False)
    """Where the record came from (``data.jsonl, record 3 (line 3)``), for error messages."""

    def chat_messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages: the conversation's turns, or one user turn of the instruction
        (and its input, after a blank line)."""
        if self.messages:
            return [{"role": role, "content": content} for role, content in self.messages]
        text = f"{self.instruction}\n\n{self.input}" if self.input else self.instruction
        return [{"role": "user", "content": text}]


def load_records(
    source: str, *, split: str = "train", require_response: bool = True, limit: int | None = None
) -> list[Record]:
    """Read every record (the first ``limit`` with ``limit``); a missing field or a value of the wrong type is
    an error naming the record (and its line for JSONL)."""
    path = Path(source)
    rows = _local_rows(path) if path.suffix in (".json", ".jsonl") else _hub_rows(source, split)
    records = [parse_record(row, where, require_response=require_response) for row, where in islice(rows, limit)]
    if not records:
        raise ResourceError(f"no records in {source!r}", hint=FIELDS_HINT)
    return records


# -- reading rows ------------------------------------------------------------------------------------------


def _local_rows(path: Path) -> Iterator[tuple[Any, str]]:
    if not path.exists():
        raise ResourceError(f"data file not found: {path}", hint="check data.train / data.valid")
    if path.is_dir():
        raise ResourceError(f"data path {str(path)!r} is a directory", hint="give a .json or .jsonl file")
    try:
        for row in json_rows(path, single=False):
            where = f"{path}, record {row.number}" + ("" if row.line is None else f" (line {row.line})")
            yield row.data, where
    except RowsError as exc:
        if exc.line is not None:
            raise ResourceError(
                f"{path}, record {exc.number} (line {exc.line}): {exc.problem}",
                hint="one JSON object per line",
            ) from exc
        if exc.problem.startswith("expected"):
            raise ResourceError(f"{path}: {exc.problem}", hint=FIELDS_HINT) from exc
        raise ResourceError(f"cannot read data from {str(path)!r}", why=exc.problem, hint=FIELDS_HINT) from exc


def _hub_rows(source: str, split: str) -> Iterator[tuple[Any, str]]:
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(source, split=split)
    except Exception as exc:  # datasets raises many types for unreadable/unknown sources
        raise ResourceError(
            f"cannot read data from {source!r}",
            why=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            hint="give a local .json/.jsonl file with instruction/response fields, or a hub dataset id that is "
            "available offline",
        ) from exc
    # column-wise: iterating a Dataset row by row costs ~40 us a row in Python
    columns = ds.to_dict()
    for i in range(ds.num_rows):
        yield {name: values[i] for name, values in columns.items()}, f"{source}, record {i + 1}"


# -- checking one record -----------------------------------------------------------------------------------


def parse_record(row: Any, where: str, *, require_response: bool = True) -> Record:
    """One record from a decoded JSON object; every problem names ``where``."""
    if not isinstance(row, Mapping):
        raise DataRecordError(f"{where}: expected a JSON object, found {_kind(row)}", hint=FIELDS_HINT)
    if row.get("messages") is not None:
        return _conversation(row["messages"], where, require_response)
    instruction = _text_field(row, INSTRUCTION_FIELDS, where)
    if instruction is None:
        raise ResourceError(
            f"{where}: missing field 'instruction' (or 'messages')", hint="each record needs an instruction"
        )
    response = _text_field(row, RESPONSE_FIELDS, where)
    if require_response and response is None:
        raise ResourceError(
            f"{where}: missing field 'response' (or 'output')",
            hint="this sampler trains on gold responses; every record needs one",
        )
    return Record(instruction, _text_field(row, INPUT_FIELDS, where) or "", response, where=where)


def _text_field(row: Mapping[str, Any], names: tuple[str, ...], where: str) -> str | None:
    """The first of ``names`` present (and not null); it must be a string."""
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataRecordError(
                f"{where}: field {name!r} must be a string, found {_kind(value)} {_preview(value)}",
                hint=FIELDS_HINT,
            )
        return value
    return None


def _conversation(messages: Any, where: str, require_response: bool) -> Record:
    def bad(problem: str) -> DataRecordError:
        return DataRecordError(f"{where}: field 'messages' {problem}", hint=FIELDS_HINT)

    if not isinstance(messages, list) or not messages:
        raise bad(f"must be a non-empty list of {{role, content}} turns, found {_kind(messages)}")
    turns: list[Turn] = []
    for i, turn in enumerate(messages, start=1):
        if not isinstance(turn, Mapping):
            raise bad(f"turn {i} must be an object with 'role' and 'content', found {_kind(turn)}")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise bad(f"turn {i}: role must be one of {', '.join(ROLES)}, found {_preview(role)}")
        if not isinstance(content, str):
            raise bad(f"turn {i}: content must be a string, found {_kind(content)} {_preview(content)}")
        if role == "system" and i != 1:
            raise bad(f"turn {i}: a system turn may only come first")
        turns.append((role, content))
    response = None
    if turns[-1][0] == "assistant":
        response = turns.pop()[1]
    elif require_response:
        raise bad(f"must end with the assistant's response (the last turn is the {turns[-1][0]}'s)")
    users = [content for role, content in turns if role == "user"]
    if not users:
        raise bad("has no user turn before the response")
    return Record(users[-1], "", response, messages=tuple(turns), where=where)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, Mapping):
        return "an object"
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"({text[:40]}{'...' if len(text) > 40 else ''})"
