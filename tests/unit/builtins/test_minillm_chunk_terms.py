"""The MiniLLM divergence's per-chunk terms (log q of the target, exact KL(q || p)) with their hand-written
gradient, against the same terms composed from autograd ops."""

from __future__ import annotations

import pytest
import torch

from minillm_distill.builtins.divergences._math import LOG_FLOOR
from minillm_distill.builtins.divergences.minillm.policy import _chunk_terms


def autograd_terms(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logq = torch.log_softmax(s, -1).clamp(min=LOG_FLOOR)
    logp = torch.log_softmax(t, -1).clamp(min=LOG_FLOOR)
    target = logq.gather(-1, y[:, None]).squeeze(-1)
    kl = (logq.exp() * (logq - logp)).sum(-1)
    return torch.stack([target, kl], -1)


def values_and_grad(fn, s, t, y, upstream):
    s = s.clone().requires_grad_(True)
    out = fn(s, t, y)
    (out * upstream).sum().backward()
    return out.detach(), s.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradient_equal_autograd(dtype):
    g = torch.Generator().manual_seed(0)
    n, v = 37, 501
    s = torch.randn(n, v, generator=g, dtype=dtype) * 3
    t = torch.randn(n, v, generator=g, dtype=dtype) * 3
    y = torch.randint(0, v, (n,), generator=g)
    upstream = torch.randn(n, 2, generator=g, dtype=dtype)
    ref_out, ref_grad = values_and_grad(autograd_terms, s, t, y, upstream)
    out, grad = values_and_grad(_chunk_terms, s, t, y, upstream)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, ref_out, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)


def test_kl_gradient_is_the_hand_derived_one():
    # one row, 3 tokens: d KL / dz = q (d - KL), d log q(y) / dz = onehot(y) - q
    s = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, -0.5]], dtype=torch.float64)
    q = torch.softmax(s, -1)
    d = torch.log_softmax(s, -1) - torch.log_softmax(t, -1)
    kl = float((q * d).sum())
    _, grad_kl = values_and_grad(_chunk_terms, s, t, torch.tensor([1]), torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(grad_kl, q * (d - kl))
    _, grad_lp = values_and_grad(_chunk_terms, s, t, torch.tensor([1]), torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(grad_lp, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64) - q)


def test_minus_infinity_logits_stay_finite_like_the_clamped_composition():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(4, 50, generator=g)
    t = torch.randn(4, 50, generator=g)
    s[:, 40:] = float("-inf")  # a masked vocabulary tail on both
    t[:, 40:] = float("-inf")
    t[0, 3] = float("-inf")  # the teacher rules out a token the student gives mass
    s[1, 7] = float("-inf")  # the target of row 1 is impossible for the student
    y = torch.tensor([3, 7, 45, 0])
    upstream = torch.randn(4, 2, generator=g)
    ref_out, ref_grad = values_and_grad(autograd_terms, s, t, y, upstream)
    out, grad = values_and_grad(_chunk_terms, s, t, y, upstream)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)


def test_a_second_backward_is_refused_not_wrong():
    s = torch.randn(3, 10, requires_grad=True)
    out = _chunk_terms(s, torch.randn(3, 10), torch.tensor([0, 1, 2]))
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once per forward"):
        out.sum().backward()


def test_float32_error_at_a_real_vocabulary_is_no_worse_than_autograds():
    # against float64: the KL is summed the way autograd's composition sums it (a dot product would not be)
    g = torch.Generator().manual_seed(0)
    n, v = 16, 50257
    s = torch.randn(n, v, generator=g, dtype=torch.float64) * 3
    t = torch.randn(n, v, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, v, (n,), generator=g)
    upstream = torch.randn(n, 2, generator=g, dtype=torch.float64)
    truth, truth_grad = values_and_grad(autograd_terms, s, t, y, upstream)
    errors = {}
    for name, fn in (("autograd", autograd_terms), ("fused", _chunk_terms)):
        out, grad = values_and_grad(fn, s.float(), t.float(), y, upstream.float())
        errors[name] = (float((out.double() - truth).abs().max()), float((grad.double() - truth_grad).abs().max()))
    assert errors["fused"][0] <= 1.01 * errors["autograd"][0] + 1e-9, errors
    assert errors["fused"][1] <= 1.5 * errors["autograd"][1] + 1e-9, errors


@pytest.mark.parametrize("chunk", [None, 2, 5])  # one chunk, and chunks recomputed in backward
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_through_the_walk_on_sliced_padded_logits(chunk, temperature):
    from minillm_distill.scoring.walk import ResponseScores, walk_tokens

    g = torch.Generator().manual_seed(0)
    b, t, v, pad = 3, 7, 53, 11  # logits wider than the shared vocabulary: the walk passes [:, :v] slices
    s = torch.randn(b, t, v + pad, generator=g) * 3
    te = torch.randn(b, t, v + pad, generator=g) * 3
    y = torch.randint(0, v, (b, t), generator=g)
    s[..., 40:v] = float("-inf")
    te[..., 45:v] = float("-inf")
    te[0, :, 3] = float("-inf")
    y[1, :] = 42  # a target at the floor
    mask = torch.rand(b, t, generator=g) > 0.2
    upstream = torch.randn(int(mask.sum()), 2, generator=g)

    def run(fn):
        x = s.clone().requires_grad_(True)
        walk = walk_tokens(
            ResponseScores(logits=x, vocab_size=v), ResponseScores(logits=te, vocab_size=v), y, mask, fn,
            chunk_tokens=chunk, temperature=temperature,
        )  # fmt: skip
        (walk.values * upstream).sum().backward()
        return walk.values.detach(), x.grad

    ref, new = run(autograd_terms), run(_chunk_terms)
    torch.testing.assert_close(new[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(new[1], ref[1], rtol=1e-5, atol=1e-6)
    assert torch.isfinite(new[1]).all()


def _normalised(fn):
    """``fn`` given the teacher's log-probabilities, flagged as such."""
    return lambda s, t, y: fn(s, torch.log_softmax(t, -1), y, True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_teacher_log_probabilities_skip_the_log_softmax_with_the_same_values(dtype):
    g = torch.Generator().manual_seed(2)
    n, v = 29, 311
    s = torch.randn(n, v, generator=g, dtype=dtype) * 3
    t = torch.randn(n, v, generator=g, dtype=dtype) * 3 + 5  # raw logits, far from normalised
    y = torch.randint(0, v, (n,), generator=g)
    upstream = torch.randn(n, 2, generator=g, dtype=dtype)
    ref_out, ref_grad = values_and_grad(autograd_terms, s, t, y, upstream)
    out, grad = values_and_grad(_normalised(_chunk_terms), s, t, y, upstream)
    # float64 checks the math; float32 only its rounding (the two sum in different orders)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, ref_out, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)
    # the flag is read: raw logits flagged as log-probabilities give a wrong KL (off by their log-sum-exp)
    wrong, _ = values_and_grad(lambda a, b, c: _chunk_terms(a, b, c, True), s, t, y, upstream)
    assert float((wrong[:, 1] - ref_out[:, 1]).abs().min()) > 1.0


def test_minus_infinity_teacher_log_probabilities_stay_finite_and_unmodified():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(4, 50, generator=g)
    t = torch.randn(4, 50, generator=g)
    s[:, 40:] = float("-inf")
    t[:, 40:] = float("-inf")
    t[0, 3] = float("-inf")
    s[1, 7] = float("-inf")
    y = torch.tensor([3, 7, 45, 0])
    upstream = torch.randn(4, 2, generator=g)
    logp = torch.log_softmax(t, -1)
    kept = logp.clone()
    ref_out, ref_grad = values_and_grad(autograd_terms, s, t, y, upstream)
    out, grad = values_and_grad(lambda a, b, c: _chunk_terms(a, b, c, True), s, logp, y, upstream)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)
    assert torch.equal(logp, kept)  # a phase's kept rows are read by every PPO epoch: never written


@pytest.mark.parametrize(
    "index,view", [([1, 2, 4], False), ([4, 3, 2], False), ([2, 2, 3], False), ([0, 3, 2, 3], False),
                   ([2, 3, 4], True), ([5], True)],
)  # fmt: skip
def test_consecutive_rows_are_a_view_and_others_a_copy(index, view):
    from minillm_distill.scoring.walk import ResponseScores

    flat = torch.arange(6 * 4, dtype=torch.float32).reshape(6, 4)
    scores = ResponseScores(logits=flat.reshape(2, 3, 4))
    picked = scores.rows(flat, torch.tensor(index))
    torch.testing.assert_close(picked, flat[torch.tensor(index)])
    assert (picked.data_ptr() == flat[index[0]].data_ptr() and picked._base is not None) is view


def test_a_consumer_writing_the_teacher_rows_in_place_is_refused():
    from minillm_distill.scoring.walk import ResponseScores, walk_tokens

    s = torch.randn(1, 4, 9, requires_grad=True)
    t = torch.randn(1, 4, 9)
    kept = t.clone()

    def writes(a, b, y):
        b.mul_(2.0)
        return a.sum(-1)

    with pytest.raises(RuntimeError, match="in place"):
        walk_tokens(ResponseScores(logits=s), ResponseScores(logits=t), torch.zeros(1, 4, dtype=torch.long),
                    torch.ones(1, 4, dtype=torch.bool), writes)  # fmt: skip
    assert not torch.equal(t, kept)  # a view of the kept rows: why the walk must refuse it


def test_a_write_into_a_private_copy_of_the_teacher_rows_is_allowed():
    from minillm_distill.scoring.walk import ResponseScores, walk_tokens

    s = torch.randn(1, 4, 9, requires_grad=True)
    t = torch.randn(1, 4, 9)
    kept = t.clone()
    mask = torch.tensor([[True, False, True, True]])  # not consecutive: the rows are copied

    def writes(a, b, y):
        b.mul_(2.0)
        return a.sum(-1)

    walk = walk_tokens(ResponseScores(logits=s), ResponseScores(logits=t), torch.zeros(1, 4, dtype=torch.long), mask,
                       writes)  # fmt: skip
    assert walk.values.shape == (3,) and torch.equal(t, kept)


@pytest.mark.parametrize("student_vocab", [40, 32])  # as wide as the teacher's kept rows, and narrower
def test_token_terms_read_kept_log_probabilities_as_they_are_only_when_all_their_rows_are_read(student_vocab):
    from minillm_distill.builtins.divergences.minillm.policy import token_terms
    from minillm_distill.scoring.walk import ResponseScores

    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 3, student_vocab, generator=g)
    raw = torch.randn(2, 3, 40, generator=g) * 2 + 3  # not log-probabilities
    y = torch.randint(0, 32, (2, 3), generator=g)
    mask = torch.ones(2, 3, dtype=torch.bool)

    def kl(teacher_scores):
        return token_terms(ResponseScores(logits=s), teacher_scores, y, mask)[2]

    truth = kl(ResponseScores(logits=raw))
    flagged = kl(ResponseScores(logits=raw, normalised=True))  # wrongly flagged: shows whether the flag is read
    proper = kl(ResponseScores(logits=torch.log_softmax(raw, -1), normalised=True))
    if student_vocab == 40:
        assert float((flagged - truth).abs().min()) > 1.0  # read as they are (here wrongly)
        torch.testing.assert_close(proper, truth)
    else:  # the walk cuts the rows to the student's 32: no longer normalised, so a log-softmax is taken
        torch.testing.assert_close(flagged, truth)
        torch.testing.assert_close(proper, truth)
