"""Writing and reading the shards of a teacher cache (:mod:`minillm_distill.teacher_cache.cache_format`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from minillm_distill.teacher_cache.cache_format import (
    MANIFEST,
    CacheFormatError,
    Manifest,
    file_sha256,
    id_dtype,
    shard_name,
    write_atomic,
)


@dataclass
class ShardRows:
    """What a shard holds for its records, built record by record before it is written."""

    ids: list[torch.Tensor] = field(default_factory=list)
    logprobs: list[torch.Tensor] = field(default_factory=list)
    tail: list[torch.Tensor] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    responses: list[torch.Tensor] = field(default_factory=list)
    """The response token ids of each record, kept when the teacher wrote them (empty otherwise)."""

    def add(
        self,
        ids: torch.Tensor,
        logprobs: torch.Tensor,
        tail: torch.Tensor,
        digest: bytes,
        response: torch.Tensor | None = None,
    ) -> None:
        self.ids.append(ids)
        self.logprobs.append(logprobs)
        self.tail.append(tail)
        self.hashes.append(digest)
        if response is not None:
            self.responses.append(response)

    def __len__(self) -> int:
        return len(self.hashes)


def write_shard(folder: Path, manifest: Manifest, rows: ShardRows) -> None:
    """Write ``rows`` as the next shard, then the manifest that lists it (both atomically, in that order)."""
    settings = manifest.settings
    lengths = [int(t.size(0)) for t in rows.ids]
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0)
    k = settings.k
    tensors = {
        "ids": torch.cat(rows.ids).to(torch.int64).to(id_dtype(settings.vocab_size)).reshape(-1, k).contiguous(),
        "logprobs": torch.cat(rows.logprobs).to(torch.float16).reshape(-1, k).contiguous(),
        "tail": torch.cat(rows.tail).to(torch.float16).contiguous(),
        "offsets": offsets,
        "record_hash": torch.frombuffer(bytearray(b"".join(rows.hashes)), dtype=torch.uint8).reshape(len(rows), -1),
    }
    if settings.teacher_wrote:
        if len(rows.responses) != len(rows):
            raise ValueError("a cache of the teacher's responses needs every record's response ids")
        joined = torch.cat(rows.responses) if rows.responses else torch.zeros(0, dtype=torch.int64)
        tensors["responses"] = joined.to(torch.int64).to(id_dtype(settings.vocab_size)).contiguous()
    name = shard_name(len(manifest.shards))
    path = folder / name
    write_atomic(path, save(tensors))
    manifest.shards.append({"file": name, "first": manifest.records_done, "count": len(rows),
                            "tokens": int(offsets[-1]), "sha256": file_sha256(path)})  # fmt: skip
    write_atomic(folder / MANIFEST, manifest.to_json().encode("utf-8"))


def remove_unlisted(folder: Path, manifest: Manifest | None) -> None:
    """Delete shards (and temporary files) a crash left that the manifest does not list."""
    listed = {s["file"] for s in manifest.shards} if manifest is not None else set()
    for path in folder.glob("shard-*.safetensors"):
        if path.name not in listed:
            path.unlink()
    for path in folder.glob(".*.tmp"):
        path.unlink()


@dataclass
class TeacherRows:
    """The teacher's top-k of one record's response tokens: ``ids`` ``[T, k]`` long, ``logprobs`` ``[T, k]`` and
    ``tail`` ``[T]`` float32 (log-probabilities at the capture's temperature)."""

    ids: torch.Tensor
    logprobs: torch.Tensor
    tail: torch.Tensor


class TeacherCache:
    """A captured cache, read a record at a time (a shard's rows are read by slice: memory does not grow with the
    cache). Each shard's sha256 is checked the first time it is opened in a process."""

    def __init__(self, folder: str | Path) -> None:
        from minillm_distill.teacher_cache.cache_format import read_manifest

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        if not self.manifest.complete:
            raise CacheFormatError(
                f"the cache {self.folder} is incomplete ({self.manifest.records_done} of {self.manifest.records} "
                "records): its capture stopped before the end; run the same capture command again to finish it"
            )
        self._firsts = [int(s["first"]) for s in self.manifest.shards]
        self._open: dict[int, tuple[Any, torch.Tensor]] = {}

    @property
    def settings(self) -> Any:
        return self.manifest.settings

    def __len__(self) -> int:
        return self.manifest.records

    def _shard(self, index: int) -> tuple[Any, torch.Tensor]:
        if index not in self._open:
            entry = self.manifest.shards[index]
            path = self.folder / entry["file"]
            if not path.is_file():
                raise CacheFormatError(f"the cache's shard {path} is missing")
            if file_sha256(path) != entry["sha256"]:
                raise CacheFormatError(
                    f"the cache's shard {path} does not match its sha256 in {MANIFEST} (changed or damaged)"
                )
            handle = safe_open(str(path), framework="pt")
            self._open[index] = (handle, handle.get_tensor("offsets"))
        return self._open[index]

    def _locate(self, record: int) -> tuple[int, int]:
        if not 0 <= record < self.manifest.records:
            raise IndexError(f"record {record} is not in the cache ({self.manifest.records} records)")
        import bisect

        shard = bisect.bisect_right(self._firsts, record) - 1
        return shard, record - self._firsts[shard]

    def record_hashes(self) -> list[bytes]:
        """Every record's identifying hash, in order (for the pre-flight comparison with the recipe's data)."""
        out: list[bytes] = []
        for i in range(len(self.manifest.shards)):
            handle, _ = self._shard(i)
            out += [bytes(row.tolist()) for row in handle.get_tensor("record_hash")]
        return out

    def responses(self) -> list[list[int]]:
        """Every record's response token ids, in order: what the teacher wrote (a cache whose
        :attr:`~minillm_distill.teacher_cache.cache_format.CacheSettings.teacher_wrote`)."""
        if not self.settings.teacher_wrote:
            raise ValueError(f"the cache {self.folder} holds no responses of its own (it follows the data's)")
        out: list[list[int]] = []
        for i in range(len(self.manifest.shards)):
            handle, offsets = self._shard(i)
            ids = handle.get_tensor("responses").to(torch.int64)
            bounds = offsets.tolist()
            out += [ids[bounds[j] : bounds[j + 1]].tolist() for j in range(len(bounds) - 1)]
        return out

    def rows(self, record: int) -> TeacherRows:
        shard, local = self._locate(record)
        handle, offsets = self._shard(shard)
        start, end = int(offsets[local]), int(offsets[local + 1])
        ids = handle.get_slice("ids")[start:end].to(torch.int64)
        logprobs = handle.get_slice("logprobs")[start:end].float()
        tail = handle.get_slice("tail")[start:end].float()
        return TeacherRows(ids, logprobs, tail)


def cache_bytes(folder: Path) -> int:
    return sum(os.path.getsize(p) for p in folder.glob("shard-*.safetensors"))
