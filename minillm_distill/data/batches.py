"""Which examples each rank sees at each step (a pure function of seed and step, so resume is exact),
and collation into left-padded prompts and right-padded responses."""

from __future__ import annotations

import torch

from minillm_distill.data.encode import EncodedData
from minillm_distill.rollout import PromptBatch


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def micro_batch_indices(
    n: int, *, seed: int, step: int, micro: int, grad_accum: int, world_size: int, rank: int
) -> list[list[int]]:
    """Example indices of each of this rank's ``grad_accum`` micro-batches for optimizer step ``step``
    (0-based). Every step consumes ``micro * grad_accum * world_size`` examples; epochs reshuffle."""
    per_step = micro * grad_accum * world_size
    start = step * per_step
    cache: dict[int, list[int]] = {}

    def at(pos: int) -> int:
        epoch = pos // n
        if epoch not in cache:
            cache[epoch] = epoch_permutation(n, seed, epoch)
        return cache[epoch][pos % n]

    out = []
    for m in range(grad_accum):
        base = start + (m * world_size + rank) * micro
        out.append([at(base + i) for i in range(micro)])
    return out


def collate(data: EncodedData, indices: list[int], pad_id: int) -> PromptBatch:
    prompts = [data.prompts[i] for i in indices]
    responses = [data.responses[i] for i in indices]
    tp = max(len(p) for p in prompts)
    tr = max(len(r) for r in responses)
    b = len(indices)
    prompt_ids = torch.full((b, tp), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((b, tp), dtype=torch.long)
    response_ids = torch.full((b, tr), pad_id, dtype=torch.long)
    response_mask = torch.zeros((b, tr), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        prompt_ids[i, tp - len(p) :] = torch.tensor(p)
        prompt_mask[i, tp - len(p) :] = 1
        response_ids[i, : len(r)] = torch.tensor(r)
        response_mask[i, : len(r)] = 1
    return PromptBatch(prompt_ids, prompt_mask, response_ids, response_mask)
