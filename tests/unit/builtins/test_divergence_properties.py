"""Properties every registered token-level divergence keeps (ARCHITECTURE.md, "Conventions every divergence
keeps").

The cases are generated from the plugin registry itself, so a third-party divergence installed later is
tested the same way as the built-ins. Each divergence runs with the option sets ``minillm plugins check`` uses
(:func:`minillm_distill.plugin_check.param_cases`: the defaults, then each ``Params`` field varied alone through
the values the plugin declares in ``Params.check_values`` or values derived from the field's type and bounds).

The properties of the divergence itself (finite, non-negative, zero at equal distributions, finite gradients,
``per_token`` shape, with ``-inf`` logits and underflowing probabilities) are the shipped checks
(:mod:`minillm_distill.plugin_check.token`), run here on every registered divergence; the tests below them are
about the core's reduction (masking, micro-batch splits, chunks, padded vocabularies, dtypes, shapes).
"""

from __future__ import annotations

import math

import pytest
import torch

from minillm_distill.divergence import TokenDivergence, token_divergence_loss, token_divergence_sum
from minillm_distill.plugin_check import param_cases
from minillm_distill.plugin_check.token import TOKEN_CHECKS, check_token_divergence
from minillm_distill.plugins import load_plugins

BUILTINS = {"fkl", "rkl", "jsd", "tvd", "sfkl", "srkl", "akl", "sft"}

B, T, V = 3, 5, 11


def _token_divergences() -> list[str]:
    return [e.name for e in load_plugins().divergences.entries() if issubclass(e.cls, TokenDivergence)]


def _registry_cases() -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = []
    for name in _token_divergences():
        cls = load_plugins().divergences.get(name)
        cases += [(name, case.options) for case in param_cases(cls.Params).cases]
    return cases


CASES = _registry_cases()
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts in CASES]
TEACHER_CASES = [c for c in CASES if load_plugins().divergences.get(c[0]).needs_teacher]
TEACHER_IDS = [i for c, i in zip(CASES, CASE_IDS, strict=True) if c in TEACHER_CASES]
NO_TEACHER_CASES = [c for c in CASES if c not in TEACHER_CASES]
NO_TEACHER_IDS = [i for c, i in zip(CASES, CASE_IDS, strict=True) if c in NO_TEACHER_CASES]


def make(case: tuple[str, dict]) -> TokenDivergence:
    name, opts = case
    return load_plugins().divergences.get(name).from_options(opts)


def batch(seed: int = 0, scale: float = 2.0, b: int = B, t: int = T, v: int = V):
    """Random student/teacher logits, targets and a mask with both valid and masked positions."""
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(b, t, v, generator=g) * scale
    teacher = torch.randn(b, t, v, generator=g) * scale
    targets = torch.randint(0, v, (b, t), generator=g)
    mask = torch.rand(b, t, generator=g) > 0.3
    mask[0, 0] = True
    mask[-1, -1] = False
    return student, teacher, targets, mask


def loss_of(div, student, teacher, targets, mask, **kw) -> torch.Tensor:
    return token_divergence_loss(div, student, teacher if div.needs_teacher else None, targets, mask, **kw)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors are tiny: thread hand-offs would cost more than the math (and the runners have 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_registry_has_the_builtins():
    names = {name for name, _ in CASES}
    assert names >= BUILTINS
    for name in BUILTINS:
        assert issubclass(load_plugins().divergences.get(name), TokenDivergence)
    # the option sets come from each plugin's own Params: jsd's beta, akl's mu, the skew divergences' alpha
    assert ("jsd", {"beta": 0.0}) in CASES and ("akl", {"mu": 1.0}) in CASES and ("sfkl", {"alpha": 0.0}) in CASES


# --------------------------------------------------------------------------- the shipped checks (plugins check)


@pytest.mark.parametrize("name", _token_divergences())
def test_shipped_checks_pass(name):
    """finite, non-negative, zero at equal, finite gradients, per_token shape, over every option set, with -inf
    logits and underflowing probabilities (``minillm plugins check NAME``)."""
    results = check_token_divergence(load_plugins().divergences.get(name), name)
    expected = [c for c in TOKEN_CHECKS if c != "zero at equal" or load_plugins().divergences.get(name).needs_teacher]
    assert [r.check for r in results] == expected
    assert all(r.passed for r in results), [f"{r.check}: {r.failure}" for r in results if not r.passed]


# --------------------------------------------------------------------------------------------- identity


@pytest.mark.parametrize("case", TEACHER_CASES, ids=TEACHER_IDS)
def test_identity_through_the_core_is_a_float32_zero(case):
    div = make(case)
    student, _, targets, mask = batch(seed=1)
    value = loss_of(div, student, student.clone(), targets, mask)
    assert value.dtype == torch.float32
    assert abs(value.item()) < 1e-6


@pytest.mark.parametrize("case", NO_TEACHER_CASES, ids=NO_TEACHER_IDS)
def test_teacher_free_identity(case):
    """Without a teacher there is no D(p, p); the one built-in (sft) must be -log q(target)."""
    if case[0] != "sft":
        pytest.skip("no identity property for a third-party teacher-free divergence")
    div = make(case)
    temperature = div.params.temperature
    student, _, targets, mask = batch(seed=2)
    value = loss_of(div, student, None, targets, mask)
    logq = torch.log_softmax(student.double() / temperature, dim=-1)
    nll = -logq.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert value.item() == pytest.approx(nll[mask].mean().item(), rel=1e-5)


# --------------------------------------------------------------------------------------------- masking


def _with_garbage(x: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    x = x.clone()
    bad = ~mask
    n = int(bad.sum())
    if kind == "extreme":
        values = torch.tensor([3.0e38, -3.0e38, 1.0e30, -1.0e30, 0.0, 1e-38])
        garbage = values[torch.randint(0, len(values), (n, x.size(-1)))]
    elif kind == "huge_random":
        garbage = torch.randn(n, x.size(-1)) * 1e6
    else:  # "neg_inf": a vocabulary inf-mask leaking into padded positions
        garbage = torch.full((n, x.size(-1)), -math.inf)
        garbage[:, 0] = 0.0
    x[bad] = garbage.to(x.dtype)
    return x


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("kind", ["extreme", "huge_random", "neg_inf"])
def test_masked_positions_change_nothing(case, kind):
    div = make(case)
    student, teacher, targets, mask = batch(seed=3)
    s1 = student.clone().requires_grad_()
    ref = loss_of(div, s1, teacher, targets, mask)
    ref.backward()

    s2 = _with_garbage(student, mask, kind).requires_grad_()
    t2 = _with_garbage(teacher, mask, kind)
    tg2 = targets.clone()
    tg2[~mask] = -100  # an ignore index, out of range for gather
    value = loss_of(div, s2, t2, tg2, mask)
    value.backward()

    assert torch.isfinite(value)
    assert value.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-7)
    assert torch.isfinite(s2.grad).all()
    assert torch.equal(s2.grad[~mask], torch.zeros_like(s2.grad[~mask]))
    torch.testing.assert_close(s2.grad[mask], s1.grad[mask], rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_finite_and_nonzero_on_valid_rows(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=4)
    s = student.clone().requires_grad_()
    t = teacher.clone().requires_grad_()
    value = loss_of(div, s, t, targets, mask)
    value.backward()
    assert torch.isfinite(s.grad).all()
    # every valid row of a random, mismatched pair gets a gradient; masked rows none
    assert (s.grad[mask].abs().sum(-1) > 0).all()
    assert (s.grad[~mask] == 0).all()
    # the teacher is a fixed target: no gradient reaches it
    assert t.grad is None or (t.grad == 0).all()


@pytest.mark.parametrize("case", TEACHER_CASES, ids=TEACHER_IDS)
def test_gradient_vanishes_at_identity(case):
    div = make(case)
    student, _, targets, mask = batch(seed=5)
    s = student.clone().requires_grad_()
    loss_of(div, s, student.clone(), targets, mask).backward()
    assert torch.isfinite(s.grad).all()
    if case[0] == "tvd":
        return  # |p - q| has a kink (a subgradient) at p = q
    assert s.grad.abs().max().item() < 1e-5


# --------------------------------------------------------------------------------------------- reduction


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_microbatch_split_matches_whole_batch(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=7, b=5)
    mask[1] = False  # one micro-batch below is entirely masked
    n = int(mask.sum())

    whole_s = student.clone().requires_grad_()
    whole = loss_of(div, whole_s, teacher, targets, mask)
    whole.backward()

    split_s = student.clone().requires_grad_()
    total = torch.zeros(())
    for sl in (slice(0, 1), slice(1, 2), slice(2, 4), slice(4, 5)):
        part = loss_of(div, split_s[sl], teacher[sl], targets[sl], mask[sl], num_valid_tokens=n)
        part.backward()
        total = total + part.detach()

    assert total.item() == pytest.approx(whole.item(), rel=1e-5, abs=1e-7)
    torch.testing.assert_close(split_s.grad, whole_s.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sum_and_count(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=8)
    total, count = token_divergence_sum(div, student, teacher if div.needs_teacher else None, targets, mask)
    assert count == int(mask.sum())
    mean = loss_of(div, student, teacher, targets, mask)
    assert mean.item() == pytest.approx(total.item() / count, rel=1e-6)
    # a global count from other ranks/micro-batches divides the same sum
    assert loss_of(div, student, teacher, targets, mask, num_valid_tokens=4 * count).item() == pytest.approx(
        total.item() / (4 * count), rel=1e-6
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_chunk_size_invariance(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=9)
    values, grads = [], []
    for chunk in (1, 3, 1_000_000):
        s = student.clone().requires_grad_()
        value = loss_of(div, s, teacher, targets, mask, chunk_tokens=chunk)
        value.backward()
        values.append(value.item())
        grads.append(s.grad)
    for v, g in zip(values[1:], grads[1:], strict=True):
        assert v == pytest.approx(values[0], rel=1e-5, abs=1e-7)
        torch.testing.assert_close(g, grads[0], rtol=1e-5, atol=1e-8)
    with torch.no_grad():
        assert loss_of(div, student, teacher, targets, mask, chunk_tokens=2).item() == pytest.approx(
            values[0], rel=1e-5, abs=1e-7
        )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("fill", [3.0e38, -math.inf])
def test_all_masked_microbatch_is_zero_and_backward_works(case, fill):
    div = make(case)
    student = torch.full((2, 4, V), fill).requires_grad_()
    teacher = torch.full((2, 4, V), fill)
    targets = torch.full((2, 4), -100)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    for num_valid in (None, 0, 17):
        student.grad = None
        value = loss_of(div, student, teacher, targets, mask, num_valid_tokens=num_valid)
        assert value.dtype == torch.float32
        assert value.item() == 0.0
        value.backward()
        assert student.grad is not None
        assert (student.grad == 0).all()
    total, count = token_divergence_sum(div, student, teacher if div.needs_teacher else None, targets, mask)
    assert count == 0 and total.item() == 0.0


# --------------------------------------------------------------------------------------------- vocabularies


@pytest.mark.parametrize("case", TEACHER_CASES, ids=TEACHER_IDS)
def test_padded_teacher_vocab_compares_shared_rows(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=10)
    padding = torch.randn(B, T, 5) * 50 + 20  # large logits in the padded rows must not matter
    padded_teacher = torch.cat([teacher, padding], dim=-1)

    s1 = student.clone().requires_grad_()
    ref = loss_of(div, s1, teacher, targets, mask)
    ref.backward()
    s2 = student.clone().requires_grad_()
    value = loss_of(div, s2, padded_teacher, targets, mask)
    value.backward()
    assert value.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(s2.grad, s1.grad)


@pytest.mark.parametrize("case", TEACHER_CASES, ids=TEACHER_IDS)
def test_padded_student_vocab_compares_shared_rows(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=11)
    padded = torch.cat([student, torch.randn(B, T, 3) * 50 + 20], dim=-1).requires_grad_()
    value = loss_of(div, padded, teacher, targets, mask)
    value.backward()
    ref = loss_of(div, student, teacher, targets, mask)
    assert value.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-7)
    assert (padded.grad[..., V:] == 0).all()


@pytest.mark.parametrize("case", NO_TEACHER_CASES, ids=NO_TEACHER_IDS)
def test_teacher_free_divergence_ignores_teacher_logits(case):
    """A teacher that happens to be passed (even with a smaller vocabulary) changes nothing."""
    div = make(case)
    student, teacher, targets, mask = batch(seed=12)
    targets[0, 0] = V - 1  # a token id outside the smaller teacher vocabulary below
    ref = token_divergence_loss(div, student, None, targets, mask)
    small_teacher = teacher[..., : V - 3]
    assert token_divergence_loss(div, student, small_teacher, targets, mask).item() == ref.item()
    assert token_divergence_loss(div, student, teacher, targets, mask).item() == ref.item()


# --------------------------------------------------------------------------------------------- dtypes, shapes


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bf16_inputs_give_float32_close_to_float32(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=13)
    s16 = student.bfloat16().requires_grad_()
    value = loss_of(div, s16, teacher.bfloat16(), targets, mask)
    assert value.dtype == torch.float32
    value.backward()
    assert s16.grad.dtype == torch.bfloat16
    assert torch.isfinite(s16.grad.float()).all()
    # the core upcasts: identical to float32 on the same (rounded) values
    same_values = loss_of(div, s16.detach().float(), teacher.bfloat16().float(), targets, mask)
    assert value.item() == pytest.approx(same_values.item(), rel=1e-5, abs=1e-7)
    # and close to the float32 computation before rounding to bf16 (bf16 keeps ~3 significant digits)
    full = loss_of(div, student, teacher, targets, mask)
    assert value.item() == pytest.approx(full.item(), rel=3e-2, abs=1e-3)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_leading_shape_and_layout_do_not_matter(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=14, t=T + 1)
    # a non-contiguous view, as from logits[:, :-1]
    s, t, tg, m = student[:, :-1], teacher[:, :-1], targets[:, 1:], mask[:, 1:]
    assert not s.is_contiguous()
    value = loss_of(div, s, t, tg, m)
    flat = loss_of(div, s.contiguous().reshape(-1, V), t.contiguous().reshape(-1, V), tg.reshape(-1), m.reshape(-1))
    assert value.item() == pytest.approx(flat.item(), rel=1e-6, abs=1e-7)
    # an integer 0/1 mask selects the same positions as a boolean one
    assert loss_of(div, s, t, tg, m.long()).item() == pytest.approx(value.item(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_shape_errors(case):
    div = make(case)
    student, teacher, targets, mask = batch(seed=15)
    with pytest.raises(ValueError):
        loss_of(div, student, teacher, targets[:, :-1], mask)
    with pytest.raises(ValueError):
        loss_of(div, student[:, :-1], teacher[:, :-1], targets, mask)
    if div.needs_teacher:
        with pytest.raises(ValueError, match="teacher"):
            token_divergence_loss(div, student, None, targets, mask)
        with pytest.raises(ValueError):
            token_divergence_loss(div, student, teacher[:, :-1], targets, mask)
