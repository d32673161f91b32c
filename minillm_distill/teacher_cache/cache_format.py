"""The teacher's top-k cache on disk: what ``minillm teacher capture`` writes and training reads.

A folder holds ``manifest.json`` and shards ``shard-NNNNN.safetensors`` (no pickle anywhere). Per response token
of every training record, in the order of the encoded data: the teacher's top-``k`` token ids (``uint16`` when
the vocabulary fits, else ``int32``), their log-probabilities at the capture's temperature (``float16``), and the
log of the probability mass outside them (``tail``, ``float16``, computed as a log-sum-exp over the other
entries, so it is exact to float16 rounding however close the top ``k`` come to 1). At ``k = 64`` and a
vocabulary up to 65,536 that is 64 * 2 + 64 * 2 + 2 = 258 bytes a token.

A cache of the teacher's own responses (SeqKD: the recipe's sampler writes with the teacher alone) also keeps
them, ``responses`` (the ids, in the id type, one per row), and its rows are the teacher's top-k over them.

Each shard also holds ``offsets`` (``int64`` ``[n + 1]``: record ``i``'s tokens are rows ``offsets[i]`` to
``offsets[i + 1]``) and ``record_hash`` (``uint8`` ``[n, 16]``: the first 16 bytes of the sha256 of the record's
prompt and response token ids): a recipe whose data, tokenizer, prompt format or lengths encode any record
differently is refused, naming the record. The manifest holds the settings that must match (teacher and
tokenizer fingerprints, temperature, ``k``, the data file's sha256) and, per complete shard, its records,
tokens and sha256. A shard is written to a temporary name and renamed, then the manifest is rewritten
atomically: a crash never leaves a shard that reads as complete, and a capture resumes after the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

FORMAT = "minillm-teacher-topk"
VERSION = 1
MANIFEST = "manifest.json"
HASH_BYTES = 16
DATA_RESPONSES = "data"


@dataclass(frozen=True)
class CacheSettings:
    """What a cache was captured with; a recipe that trains from it must agree on every field."""

    teacher: str
    """A fingerprint of the teacher's weights (sha256 over its weight files, or of a from-scratch spec)."""
    tokenizer: str
    """A fingerprint of the tokenizer (sha256 of its vocabulary and special tokens)."""
    temperature: float
    k: int
    vocab_size: int
    data: str
    """sha256 of the training data file."""
    prompt_format: str
    max_prompt_length: int
    max_response_length: int
    responses: str = DATA_RESPONSES
    """Whose responses the rows follow: ``"data"`` (the data's gold responses, word-level KD) or ``"teacher:"``
    and the generating sampler's name and options as JSON (SeqKD: the teacher wrote one response per prompt, kept
    in the shards as ``responses``). Not the seed the capture drew them with (:attr:`Manifest.writer`): students of
    any seed train from one capture."""

    @property
    def teacher_wrote(self) -> bool:
        return self.responses != DATA_RESPONSES


def id_dtype(vocab_size: int) -> torch.dtype:
    """The narrowest integer type that holds every token id."""
    return torch.uint16 if vocab_size <= 2**16 else torch.int32


def record_hash(prompt: list[int], response: list[int]) -> bytes:
    """16 bytes identifying one encoded training record (its prompt and response token ids)."""
    digest = hashlib.sha256()
    digest.update(len(prompt).to_bytes(4, "little"))
    for ids in (prompt, response):
        digest.update(torch.tensor(ids, dtype=torch.int64).numpy().tobytes())
    return digest.digest()[:HASH_BYTES]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


@dataclass
class Manifest:
    settings: CacheSettings
    records: int
    """Records in the data (all of them: a complete cache has every one)."""
    shards: list[dict[str, Any]]
    """Complete shards in order: ``{"file", "first", "count", "tokens", "sha256"}``."""
    writer: dict[str, Any] | None = None
    """How the teacher's responses were drawn (``{"seed", "batch_size"}``; a SeqKD capture only): a capture resumes
    only with the same, so that it writes what an unbroken one would. Training does not compare it."""

    @property
    def records_done(self) -> int:
        return sum(int(s["count"]) for s in self.shards)

    @property
    def complete(self) -> bool:
        return self.records_done == self.records

    @property
    def tokens(self) -> int:
        return sum(int(s["tokens"]) for s in self.shards)

    def to_json(self) -> str:
        body = {"format": FORMAT, "version": VERSION, "settings": asdict(self.settings), "records": self.records,
                "complete": self.complete, "shards": self.shards}  # fmt: skip
        if self.writer is not None:
            body["writer"] = self.writer
        return json.dumps(body, indent=2) + "\n"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class CacheFormatError(ValueError):
    """The folder is not a cache this minillm reads (the message says why)."""


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheFormatError(
            f"{folder} has no {MANIFEST}: not a teacher cache (or its capture never wrote a shard)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CacheFormatError(f"cannot read {path}: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise CacheFormatError(f"{path} is not a minillm teacher cache manifest")
    if body.get("version") != VERSION:
        raise CacheFormatError(
            f"{path} is format version {body.get('version')!r}; this minillm reads version {VERSION}"
        )
    try:
        settings = CacheSettings(**body["settings"])
        shards = [dict(s) for s in body["shards"]]
        records = int(body["records"])
        writer = dict(body["writer"]) if body.get("writer") is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheFormatError(f"{path} is damaged: {exc}") from exc
    return Manifest(settings, records, shards, writer)
