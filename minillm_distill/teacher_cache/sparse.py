"""Token divergences against a cached teacher: both distributions coarsened to the teacher's top-k tokens plus one
tail bucket.

The cache keeps, per token, the teacher's top-k ids and log-probabilities and the log of the rest of its mass
(:mod:`minillm_distill.teacher_cache.cache_format`). The student's distribution is coarsened the same way: its
log-probabilities at those k ids, and the log of its own remaining mass (a log-sum-exp over the other entries).
Any token divergence then runs, unchanged, on the two ``[n, k + 1]`` coarsened rows (its ``per_token`` receives
them as log-probabilities, which its log-softmax leaves as they are; a target outside the top k maps to the tail
bucket).

What this computes: the divergence between the coarsened distributions. For an f-divergence (forward and reverse
KL, JSD, total variation, the skew KLs) coarsening never increases the value (data processing), and it is exact
when the tokens outside the top k carry the same ratio q/p as their total; forward KL with the tail bucket is
exact up to that tail term: sum over the top k of p (log p - log q) is the same as the dense sum, and the tail's
own term replaces the dense sum over the rest. ``benchmarks/sparse_divergence_error.py`` measures how far each
built-in divergence's value and gradient are from the dense teacher's at several k on a real teacher.
"""

from __future__ import annotations

from typing import Any

import torch

#: -inf log-probs (an empty tail, a ruled-out token) would give 0 * -inf = nan in a divergence: a finite floor
LOG_FLOOR = -1e30


def student_buckets(student_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``[n, V]`` logits, ``[n, k]`` teacher ids -> ``[n, k + 1]`` student log-probs: at the ids, then the log of
    the mass outside them (exact: a log-sum-exp over the other entries)."""
    logq = torch.log_softmax(student_logits.float(), dim=-1)
    at = logq.gather(-1, ids)
    rest = torch.logsumexp(logq.scatter(-1, ids, float("-inf")), dim=-1, keepdim=True)
    return torch.cat([at, rest], dim=-1).clamp(min=LOG_FLOOR)


def teacher_buckets(logprobs: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
    """The cached ``[n, k]`` log-probs and ``[n]`` tail -> ``[n, k + 1]`` log-probs (renormalised: float16
    rounding leaves their total a little off 1)."""
    rows = torch.cat([logprobs.float(), tail.float().unsqueeze(-1)], dim=-1)
    return torch.log_softmax(rows, dim=-1).clamp(min=LOG_FLOOR)


def bucket_targets(targets: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Each target's bucket: its position among the ``[n, k]`` ids, or ``k`` (the tail) when it is not one."""
    k = ids.size(-1)
    hit = ids == targets.unsqueeze(-1)
    position = hit.float().argmax(-1)
    return torch.where(hit.any(-1), position, torch.full_like(position, k))


def sparse_per_token(
    divergence: Any,
    student_logits: torch.Tensor,
    ids: torch.Tensor,
    logprobs: torch.Tensor,
    tail: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """``divergence.per_token`` on the coarsened distributions: ``[n]`` values, differentiable in the student's
    logits. ``student_logits`` are at the divergence's temperature already, as ``per_token`` gets them; the
    cached values were captured at it."""
    ids = ids.to(student_logits.device)
    student = student_buckets(student_logits, ids)
    teacher = teacher_buckets(logprobs.to(student.device), tail.to(student.device))
    return divergence.per_token(student, teacher, bucket_targets(targets.to(ids.device), ids))
