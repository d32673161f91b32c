"""Training against a teacher cache (``teacher_cache:`` in a recipe): the teacher's top-k rows of a rollout read
from the cache, and the token loss computed on them (:mod:`minillm_distill.teacher_cache.sparse`) inside the same
chunked walk as against a live teacher. No teacher is loaded.

The rows are packed per position as ``[logprobs (k), tail (1), ids (k)]`` float32 (ids are exact in float32 below
2**24) so that the walk hands each chunk its own rows; ``fn`` unpacks them.
"""

from __future__ import annotations

from typing import Any

import torch

from minillm_distill.divergence import TokenDivergence, cross_entropy_per_token, divergence_fn
from minillm_distill.errors import RecipeError, ResourceError
from minillm_distill.rollout import PromptBatch, RolloutBatch
from minillm_distill.sampler import Sampler, SamplerContext
from minillm_distill.scoring.walk import ResponseScores, walk_tokens
from minillm_distill.teacher_cache.cache_format import CacheFormatError
from minillm_distill.teacher_cache.sparse import sparse_per_token
from minillm_distill.teacher_cache.store import TeacherCache

#: where minillm puts the data indices of a rollout's rows (the cache is read by record)
DATA_INDICES = "data_indices"


def check_records(cache: TeacherCache, prompts: list[list[int]], responses: list[list[int]]) -> None:
    """The cache holds exactly these encoded records, in this order: a record missing, added or encoded otherwise
    is an error naming the first one (never a silent skip)."""
    from minillm_distill.teacher_cache.cache_format import record_hash

    cached = cache.record_hashes()
    if len(cached) != len(prompts):
        raise RecipeError(
            f"the teacher cache holds {len(cached)} records, the recipe's data encodes to {len(prompts)}",
            hint="capture the cache for this recipe's data (`minillm teacher capture RECIPE --output DIR`)",
        )
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        if cached[i] != record_hash(p, r):
            raise RecipeError(
                f"record {i} of the training data is not the one the teacher cache holds at {i} (its prompt or "
                "response tokens differ)",
                why="the data file, the tokenizer or the prompt format changed since the capture",
                hint="capture the cache again for this recipe (`minillm teacher capture RECIPE --output DIR`)",
            )


class CachedResponses(Sampler):
    """Stands in for a sampler that writes with the teacher alone (SeqKD) when its responses come from a teacher
    cache: the run's data then holds the cached responses, replayed as they are (no teacher, no decoding)."""

    records_logprobs = False
    replays_data = True

    def __init__(self, sampler: Sampler) -> None:
        super().__init__(sampler.params)
        self.name = sampler.name
        self.description = f"{sampler.name}, its responses read from the teacher cache"

    def sample(self, batch: PromptBatch, ctx: SamplerContext) -> RolloutBatch:
        del ctx
        assert batch.response_ids is not None and batch.response_mask is not None
        return RolloutBatch(batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask,
                            source=f"{self.name} (cache)")  # fmt: skip


def cached_rows(cache: TeacherCache, rollout: RolloutBatch, device: torch.device) -> torch.Tensor:
    """``[B, T, 2k + 1]`` packed rows of the rollout's valid positions (zeros elsewhere)."""
    indices = rollout.extras.get(DATA_INDICES)
    if indices is None:
        raise RecipeError("a rollout without its data indices cannot be read from a teacher cache")
    mask = rollout.response_mask.bool()
    b, t = mask.shape
    k = cache.settings.k
    out = torch.zeros(b, t, 2 * k + 1, dtype=torch.float32)
    lengths = mask.sum(1).tolist()
    for row, (record, n) in enumerate(zip(indices, lengths, strict=True)):
        try:
            rows = cache.rows(int(record))
        except CacheFormatError as exc:  # a shard changed or went missing since the run started
            raise ResourceError(str(exc), hint="capture the cache again, then --resume") from exc
        if rows.ids.size(0) != n:
            raise RecipeError(f"record {record}: the cache holds {rows.ids.size(0)} response tokens, the rollout {n}")
        out[row, :n, :k] = rows.logprobs
        out[row, :n, k] = rows.tail
        out[row, :n, k + 1 :] = rows.ids.float()
    return out.to(device)


def cached_loss_sum(
    divergence: TokenDivergence,
    student: ResponseScores,
    packed: torch.Tensor,
    k: int,
    vocab: int,
    targets: torch.Tensor,
    mask: torch.Tensor,
    kd_ratio: float = 1.0,
    *,
    origin: str | None = None,
) -> torch.Tensor:
    """The sum over valid tokens of the divergence against the cached teacher, mixed with the cross entropy when
    ``kd_ratio`` < 1 (as against a live teacher)."""
    checked = divergence_fn(_Sparse(divergence, k), origin)
    temperature = float(getattr(divergence.params, "temperature", 1.0))
    div = walk_tokens(student, None, targets, mask, checked, temperature=temperature, teacher_rows=packed,
                      vocab_limit=vocab).values.sum()  # fmt: skip
    if kd_ratio >= 1.0:
        return div
    ce = walk_tokens(student, None, targets, mask, lambda s, t, tg: cross_entropy_per_token(s, tg)).values.sum()
    return kd_ratio * div + (1.0 - kd_ratio) * ce


class _Sparse(TokenDivergence):
    """The divergence's ``per_token`` on packed cache rows (the first-call checks apply to it as to the original)."""

    def __init__(self, divergence: TokenDivergence, k: int) -> None:
        super().__init__(divergence.params)
        self.inner, self.k = divergence, k
        self.name = divergence.name
        self.needs_teacher = True

    def per_token(self, student_logits: torch.Tensor, teacher_logits: Any, targets: torch.Tensor) -> torch.Tensor:
        k = self.k
        rows = teacher_logits
        return sparse_per_token(self.inner, student_logits, rows[:, k + 1 :].long(), rows[:, :k], rows[:, k], targets)
