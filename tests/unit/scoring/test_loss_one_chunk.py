"""A walk whose valid tokens fit in one chunk is one plain autograd call (no recomputation in backward): the
same loss and gradients as the chunked, recomputed walk, with each output layer called once per walk instead
of twice per chunk."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_tiny

from minillm_distill.divergence import token_divergence_sum
from minillm_distill.plugins import load_plugins
from minillm_distill.sampler import RolloutBatch
from minillm_distill.scoring.forward import score_responses
from minillm_distill.train.step import token_loss_sum

REGISTRY = load_plugins().divergences
ONE_CHUNK = 10**6  # train.loss_chunk_tokens large enough for every valid token of the batch
CHUNKED = 3


def _models():
    student = build_tiny("gpt2", seed=1).model.double().train()
    for m in student.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    teacher = build_tiny("gpt2", seed=2, hidden=24).model.double().eval().requires_grad_(False)
    return student, teacher


def _batch() -> RolloutBatch:
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, 120, (3, 5), generator=g)
    pmask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    resp = torch.randint(3, 120, (3, 7), generator=g)
    rmask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0]])
    return RolloutBatch(prompt, pmask, resp * rmask, rmask)


class _Calls:
    """Counts the calls of a module's forward (recomputation in backward included)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.n = 0
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1

    def remove(self) -> None:
        self._handle.remove()


def _run(student, teacher, batch, loss_of, chunk: int | None):
    """Loss, gradients and output-layer calls (student, teacher) of one loss + backward at ``chunk``."""
    for p in student.parameters():
        p.grad = None
    s = score_responses(student, batch, chunk_tokens=chunk)
    with torch.no_grad():
        t = score_responses(teacher, batch, chunk_tokens=chunk)
    assert s.hidden is not None and t.hidden is not None
    s_calls, t_calls = _Calls(student.get_output_embeddings()), _Calls(teacher.get_output_embeddings())
    try:
        loss = loss_of(s, t)
        loss.backward()
    finally:
        s_calls.remove()
        t_calls.remove()
    grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    return loss.detach(), grads, (s_calls.n, t_calls.n)


def _minillm_loss(batch):
    cls = REGISTRY.get("minillm")
    div = cls(cls.Params(single_step_coef=1.0))
    g = torch.Generator().manual_seed(5)
    mask = batch.response_mask.bool()
    shape = batch.response_ids.shape
    batch.behaviour_logprobs = (-torch.rand(shape, generator=g) * 3) * mask
    batch.teacher_logprobs = (-torch.rand(shape, generator=g) * 3) * mask
    batch.importance_weights = torch.where(mask, 0.5 + torch.rand(shape, generator=g), torch.ones(shape))
    from minillm_distill.divergence import Reducer, StepNorm

    prepared, _ = div.prepare([batch], Reducer())
    return lambda s, t: div.loss(s, t, batch, prepared[0], StepNorm(tokens=15, sequences=3))[0]


CASES = {
    "jsd": lambda batch: (
        lambda s, t: token_divergence_sum(REGISTRY.get("jsd")(), s, t, batch.response_ids, batch.response_mask.bool())[
            0
        ]
    ),
    "sft": lambda batch: (
        lambda s, t: token_divergence_sum(
            REGISTRY.get("sft")(), s, None, batch.response_ids, batch.response_mask.bool()
        )[0]
    ),
    "fkl+ce": lambda batch: (
        lambda s, t: token_loss_sum(REGISTRY.get("fkl")(), s, t, batch.response_ids, batch.response_mask.bool(), 0.3)
    ),
    "minillm": _minillm_loss,
}
# output-layer calls of one loss + backward on the one-chunk path: (student, teacher)
ONE_CHUNK_CALLS = {"jsd": (1, 1), "sft": (1, 0), "fkl+ce": (1, 1), "minillm": (1, 1)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_chunk_walk_equals_the_chunked_walk_and_calls_each_head_once(case):
    student, teacher = _models()
    batch = _batch()
    loss_of = CASES[case](batch)
    one_loss, one_grads, one_calls = _run(student, teacher, batch, loss_of, ONE_CHUNK)
    chunked_loss, chunked_grads, chunked_calls = _run(student, teacher, batch, loss_of, CHUNKED)
    torch.testing.assert_close(one_loss, chunked_loss, rtol=1e-12, atol=0)
    assert one_grads.keys() == chunked_grads.keys() and one_grads
    for name in one_grads:
        torch.testing.assert_close(one_grads[name], chunked_grads[name], rtol=1e-10, atol=1e-14)
    assert one_calls == ONE_CHUNK_CALLS[case]
    # 15 valid tokens in chunks of 3: 5 chunks per walk, each head called in forward and again in backward
    walks_s, walks_t = ONE_CHUNK_CALLS[case]
    assert chunked_calls == (walks_s * 5 * 2, walks_t * 5 * 2)


def test_default_chunking_walks_a_small_batch_as_one_chunk(monkeypatch):
    """No ``train.loss_chunk_tokens``: the chunk size follows the vocabulary (a power of two of 16 to 2048 tokens
    near DEFAULT_CHUNK_ELEMENTS logits), so a small vocabulary's batch is one chunk and a walk longer than the
    chunk is chunked and recomputed, with the same values."""
    import minillm_distill.scoring.walk as scores

    student, teacher = _models()
    g = torch.Generator().manual_seed(3)
    batch = RolloutBatch(
        torch.randint(3, 120, (4, 5), generator=g),
        torch.ones(4, 5, dtype=torch.long),
        torch.randint(3, 120, (4, 10), generator=g),
        torch.ones(4, 10, dtype=torch.long),
    )  # 40 valid tokens
    loss_of = CASES["jsd"](batch)
    one_loss, one_grads, calls = _run(student, teacher, batch, loss_of, None)
    assert calls == (1, 1)
    monkeypatch.setattr(scores, "DEFAULT_CHUNK_ELEMENTS", 1)  # the smallest default chunk: 16 tokens
    chunked_loss, chunked_grads, calls = _run(student, teacher, batch, loss_of, None)
    assert calls == (3 * 2, 3 * 2)  # 40 tokens in chunks of 16, each head called again in backward
    torch.testing.assert_close(one_loss, chunked_loss, rtol=1e-12, atol=0)
    for name in one_grads:
        torch.testing.assert_close(one_grads[name], chunked_grads[name], rtol=1e-10, atol=1e-14)


def test_default_chunk_sizes_at_real_vocabularies():
    # 2**24 logits per chunk, rounded down to a power of two: no walk is held whole because it is short
    from minillm_distill.scoring.walk import chunk_tokens_for

    assert [chunk_tokens_for(v) for v in (127, 50257, 151936, 256000)] == [2048, 256, 64, 64]
    assert chunk_tokens_for(50257, 100) == 100
