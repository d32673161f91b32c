"""``minillm teacher capture``: run a recipe's teacher once over its training data and keep, per response token,
its top-k log-probabilities (:mod:`minillm_distill.teacher_cache.cache_format`).

The records are encoded exactly as ``minillm distill`` encodes them (prompt format, lengths, dropped long
prompts), the teacher scores each prompt + gold response (or, for SeqKD, + the response it wrote itself with the
recipe's sampler) in one forward pass, and its logits over the rows the
student shares are taken at the recipe's temperature, a chunk of tokens at a time (nothing vocabulary-sized is
kept beyond a chunk). Shards are written every ``shard_records`` records; a capture that stops resumes after the
last complete shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from minillm_distill.data.batches import collate
from minillm_distill.data.encode import EncodedData
from minillm_distill.rollout import PromptBatch, RolloutBatch
from minillm_distill.teacher_cache.cache_format import CacheSettings, Manifest, read_manifest, record_hash
from minillm_distill.teacher_cache.store import ShardRows, cache_bytes, remove_unlisted, write_shard
from minillm_distill.teacher_cache.topk_teacher import InProcessTeacher


@dataclass
class CaptureResult:
    records: int
    tokens: int
    bytes: int
    seconds: float
    resumed_from: int
    tokens_this_run: int = 0

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / max(self.tokens, 1)


def capture(
    teacher: Any,
    data: EncodedData,
    folder: Path,
    settings: CacheSettings,
    *,
    pad_id: int,
    batch_size: int = 8,
    shard_records: int = 1024,
    chunk_tokens: int = 256,
    device: torch.device | str = "cpu",
    on_shard: Callable[[Manifest], None] | None = None,
    write: Callable[[PromptBatch, int], RolloutBatch] | None = None,
    writer: dict[str, Any] | None = None,
) -> CaptureResult:
    """Capture (or finish capturing) ``data`` into ``folder``. ``teacher``: a model (scored in this process) or any
    :class:`~minillm_distill.teacher_cache.topk_teacher.TopKTeacher`. A folder holding a cache of other settings
    is an error (``ValueError`` naming the fields); a complete one is left as it is.

    ``write(batch, first)``: when ``settings.teacher_wrote``, the teacher's responses to a batch of prompts whose
    first record is ``first`` (the recipe's sampler, seeded by ``first`` so a resumed capture writes what an
    unbroken one would); the rows are then the teacher's top-k over those responses, which are kept too.
    ``writer`` says how they are drawn (the seed ``write`` uses): it and ``batch_size`` must be the same to resume
    such a capture (a ``ValueError`` naming what changed)."""
    if settings.teacher_wrote and write is None:
        raise ValueError("a cache of the teacher's own responses needs `write` (the sampler that writes them)")
    source = teacher if hasattr(teacher, "topk") else InProcessTeacher(teacher, chunk_tokens=chunk_tokens)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = None
    if (folder / "manifest.json").exists():
        manifest = read_manifest(folder)
        if manifest.settings != settings or manifest.records != len(data):
            differ = [k for k, v in vars(settings).items() if getattr(manifest.settings, k) != v]
            if manifest.records != len(data):
                differ.append("records")
            raise ValueError(f"{folder} holds a cache of other settings ({', '.join(differ)})")
    drawn = {**(writer or {}), "batch_size": batch_size} if settings.teacher_wrote else None
    if manifest is not None and manifest.writer != drawn:
        old, new = manifest.writer or {}, drawn or {}
        changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
        raise ValueError(
            f"{folder} holds responses the teacher wrote with another "
            + ", ".join(f"{k} ({old.get(k)!r}, now {new.get(k)!r})" for k in changed)
            + ": resuming would mix two draws"
        )
    remove_unlisted(folder, manifest)
    manifest = manifest or Manifest(settings, len(data), [], drawn)
    resumed_from, tokens_before = manifest.records_done, manifest.tokens
    start_time = time.perf_counter()
    rows = ShardRows()
    next_record = manifest.records_done
    while next_record < len(data):
        indices = list(range(next_record, min(next_record + batch_size, len(data))))
        batch = collate(data, indices, pad_id)
        if write is not None and settings.teacher_wrote:
            # the teacher wrote them: its rollout carries its hidden states from decoding, so no second forward
            rollout = write(batch, indices[0])
            batch = PromptBatch(batch.prompt_ids, batch.prompt_mask, rollout.response_ids.cpu(),
                                rollout.response_mask.cpu())  # fmt: skip
        else:
            rollout = RolloutBatch(*(t.to(device) for t in (batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                                              batch.response_mask)))  # fmt: skip
        answer = source.topk(rollout, k=settings.k, temperature=settings.temperature, vocab_size=settings.vocab_size)
        assert batch.response_ids is not None and batch.response_mask is not None
        for row, (i, (ids, values, tail)) in enumerate(zip(indices, answer.rows(), strict=True)):
            if settings.teacher_wrote:
                response = batch.response_ids[row][batch.response_mask[row].bool()]
                rows.add(ids, values, tail, record_hash(data.prompts[i], response.tolist()), response)
            else:
                rows.add(ids, values, tail, record_hash(data.prompts[i], data.responses[i]))
        next_record = indices[-1] + 1
        if len(rows) >= shard_records or next_record == len(data):
            write_shard(folder, manifest, rows)
            rows = ShardRows()
            if on_shard is not None:
                on_shard(manifest)
    if manifest.records == 0:
        write_shard(folder, manifest, rows)
    seconds = time.perf_counter() - start_time
    return CaptureResult(manifest.records, manifest.tokens, cache_bytes(folder), seconds, resumed_from,
                         manifest.tokens - tokens_before)  # fmt: skip
