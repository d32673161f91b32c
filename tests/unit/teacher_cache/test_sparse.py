"""Token divergences against a cached teacher (top-k + a tail bucket): exact where they must be, never above the
dense value for f-divergences, against an independent float64 computation for forward KL."""

from __future__ import annotations

import pytest
import torch

from minillm_distill.plugins import load_plugins
from minillm_distill.teacher_cache.sparse import bucket_targets, sparse_per_token
from minillm_distill.teacher_cache.topk_teacher import topk_rows

PERMUTATION_INVARIANT = ("fkl", "rkl", "jsd", "tvd", "sfkl", "srkl", "akl")
F_DIVERGENCES = ("fkl", "rkl", "jsd", "tvd")


def _logits(n: int = 6, v: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(n, v, generator=g, dtype=torch.float64) * 2
    teacher = torch.randn(n, v, generator=g, dtype=torch.float64) * 3
    targets = torch.randint(0, v, (n,), generator=g)
    return student, teacher, targets


def _div(name: str):
    return load_plugins().divergences.get(name)()


@pytest.mark.parametrize("name", PERMUTATION_INVARIANT)
def test_with_one_token_in_the_tail_the_sparse_value_is_the_dense_one(name):
    student, teacher, targets = _logits()
    v = student.size(-1)
    ids, values, tail = topk_rows(teacher, 1.0, v - 1)  # the tail bucket holds exactly one token
    div = _div(name)
    dense = div.per_token(student.float(), teacher.float(), targets)
    sparse = sparse_per_token(div, student.float(), ids, values, tail, targets)
    torch.testing.assert_close(sparse, dense, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", F_DIVERGENCES)
@pytest.mark.parametrize("k", [1, 4, 16])
def test_coarsening_never_increases_an_f_divergence(name, k):
    student, teacher, targets = _logits(seed=k)
    ids, values, tail = topk_rows(teacher, 1.0, k)
    div = _div(name)
    dense = div.per_token(student.float(), teacher.float(), targets)
    sparse = sparse_per_token(div, student.float(), ids, values, tail, targets)
    assert bool((sparse <= dense + 1e-5).all()), (sparse, dense)
    assert bool((sparse >= -1e-6).all())


def test_forward_kl_against_float64_by_hand_with_float16_storage():
    student, teacher, targets = _logits(n=4, v=30, seed=3)
    k = 5
    ids, values, tail = topk_rows(teacher, 2.0, k)
    values16, tail16 = values.half(), tail.half()  # as the cache stores them
    got = sparse_per_token(_div("fkl"), (student / 2.0).float(), ids, values16, tail16, targets)
    p = torch.softmax(teacher / 2.0, dim=-1)
    q = torch.softmax(student / 2.0, dim=-1)
    p_k, q_k = p.gather(-1, ids), q.gather(-1, ids)
    p_t, q_t = 1 - p_k.sum(-1), 1 - q_k.sum(-1)
    want = (p_k * (p_k / q_k).log()).sum(-1) + p_t * (p_t / q_t).log()
    torch.testing.assert_close(got.double(), want, rtol=2e-3, atol=2e-4)  # float16 values


def test_gradients_are_finite_with_ruled_out_tokens_and_flow_to_the_student():
    student, teacher, targets = _logits(n=3, v=20, seed=5)
    teacher[:, :4] = float("-inf")  # tokens the teacher rules out
    student = student.float().requires_grad_()
    ids, values, tail = topk_rows(teacher, 1.0, 8)
    for name in PERMUTATION_INVARIANT:
        student.grad = None
        sparse_per_token(_div(name), student, ids, values, tail, targets).sum().backward()
        assert student.grad is not None and bool(torch.isfinite(student.grad).all()), name
        assert float(student.grad.abs().sum()) > 0, name


def test_targets_map_to_their_bucket_or_the_tail():
    ids = torch.tensor([[5, 2, 9], [1, 0, 3]])
    assert bucket_targets(torch.tensor([9, 7]), ids).tolist() == [2, 3]


@pytest.mark.parametrize("kd_ratio", [1.0, 0.5])
def test_the_cached_loss_in_the_walk_equals_the_dense_one_with_a_one_token_tail(kd_ratio):
    """Through the chunked walk (several chunks, padding in the batch, cross entropy mixed in): the cached path
    (packed top-k rows) against the dense path with the teacher's logits, at k = V - 1."""
    from minillm_distill.scoring.walk import ResponseScores
    from minillm_distill.train.cached_teacher import cached_loss_sum
    from minillm_distill.train.token_step import token_loss_sum

    g = torch.Generator().manual_seed(11)
    b, t, v = 2, 5, 12
    student = torch.randn(b, t, v, generator=g)
    teacher = torch.randn(b, t, v, generator=g) * 2
    targets = torch.randint(0, v, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 3:] = False
    k = v - 1
    ids, values, tail = topk_rows(teacher.reshape(-1, v), 2.0, k)
    packed = torch.cat([values, tail[:, None], ids.float()], dim=-1).reshape(b, t, 2 * k + 1)
    div = load_plugins().divergences.get("fkl").from_options({"temperature": 2.0})
    s_dense = student.clone().requires_grad_()
    dense = token_loss_sum(div, ResponseScores(logits=s_dense, chunk_tokens=3), ResponseScores(logits=teacher),
                           targets, mask, kd_ratio)  # fmt: skip
    dense.backward()
    s_cached = student.clone().requires_grad_()
    cached = cached_loss_sum(div, ResponseScores(logits=s_cached, chunk_tokens=3), packed, k, v, targets, mask,
                             kd_ratio)  # fmt: skip
    cached.backward()
    torch.testing.assert_close(cached, dense, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s_cached.grad, s_dense.grad, rtol=1e-4, atol=1e-6)
