"""Values of the built-in divergences against independent computations.

References are computed in float64 with ``torch.distributions``, ``torch.nn.functional`` or numpy / plain
Python floats, never with the plugins' own helpers. Divergences themselves compute in float32, hence the
tolerances. p is the teacher distribution, q the student's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

from minillm_distill.divergence import token_divergence_loss, token_divergence_sum
from minillm_distill.plugins import load_plugins

N, V = 6, 9
RTOL, ATOL = 1e-4, 1e-6


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors are tiny: thread hand-offs would cost more than the math (and the runners have 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(name: str, **opts):
    return load_plugins().divergences.get(name).from_options(opts)


def logits_pair(seed: int, scale: float = 2.0, n: int = N, v: int = V):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, v, generator=g) * scale, torch.randn(n, v, generator=g) * scale


def rows(div, student, teacher, targets=None) -> torch.Tensor:
    """Per-row values through the core (one valid position at a time)."""
    n = student.size(0)
    if targets is None:
        targets = torch.zeros(n, dtype=torch.long)
    out = []
    for i in range(n):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[i] = True
        total, count = token_divergence_sum(div, student, teacher, targets, mask)
        assert count == 1
        out.append(total)
    return torch.stack(out).double()


def probs64(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).numpy()


def np_kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * (np.log(a) - np.log(b))).sum(-1)


def close(actual: torch.Tensor, expected, rtol: float = RTOL, atol: float = ATOL) -> None:
    expected = torch.as_tensor(np.asarray(expected), dtype=torch.float64)
    torch.testing.assert_close(actual.double(), expected, rtol=rtol, atol=atol)


SCALES = [0.5, 2.0, 6.0]


# --------------------------------------------------------------------------------------------- forward / reverse KL


@pytest.mark.parametrize("scale", SCALES)
def test_fkl_matches_torch_distributions(scale):
    s, t = logits_pair(1, scale)
    expected = kl_divergence(Categorical(logits=t.double()), Categorical(logits=s.double()))
    close(rows(make("fkl"), s, t), expected)


@pytest.mark.parametrize("scale", SCALES)
def test_rkl_matches_torch_distributions(scale):
    s, t = logits_pair(2, scale)
    expected = kl_divergence(Categorical(logits=s.double()), Categorical(logits=t.double()))
    close(rows(make("rkl"), s, t), expected)


def test_kl_includes_the_entropy_term():
    """A true divergence, not the cross-entropy form: for q = p the value is 0, not H(p)."""
    s, t = logits_pair(3)
    assert rows(make("fkl"), t, t).abs().max() < 1e-6
    assert Categorical(logits=t).entropy().min() > 0.1


def test_fkl_gradient_matches_autograd_reference():
    s, t = logits_pair(4)
    mask = torch.ones(N, dtype=torch.bool)
    targets = torch.zeros(N, dtype=torch.long)
    s1 = s.clone().requires_grad_()
    token_divergence_loss(make("fkl"), s1, t, targets, mask, chunk_tokens=2).backward()
    s2 = s.double().requires_grad_()
    kl_divergence(Categorical(logits=t.double()), Categorical(logits=s2)).mean().backward()
    torch.testing.assert_close(s1.grad.double(), s2.grad, rtol=1e-4, atol=1e-7)


def test_rkl_gradient_matches_autograd_reference():
    s, t = logits_pair(5)
    mask = torch.ones(N, dtype=torch.bool)
    targets = torch.zeros(N, dtype=torch.long)
    s1 = s.clone().requires_grad_()
    token_divergence_loss(make("rkl"), s1, t, targets, mask, chunk_tokens=4).backward()
    s2 = s.double().requires_grad_()
    kl_divergence(Categorical(logits=s2), Categorical(logits=t.double())).mean().backward()
    torch.testing.assert_close(s1.grad.double(), s2.grad, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------------------------- JSD


@pytest.mark.parametrize("scale", SCALES)
def test_jsd_half_is_symmetric_jsd(scale):
    s, t = logits_pair(6, scale)
    p, q = probs64(t), probs64(s)
    m = 0.5 * (p + q)
    expected = 0.5 * np_kl(p, m) + 0.5 * np_kl(q, m)
    value = rows(make("jsd", beta=0.5), s, t)
    close(value, expected)
    # symmetric and bounded by log 2
    close(rows(make("jsd", beta=0.5), t, s), expected)
    assert (value <= math.log(2) + 1e-6).all()


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.7, 0.9])
def test_jsd_generalized_hand_formula(beta):
    s, t = logits_pair(7)
    p, q = probs64(t), probs64(s)
    m = beta * p + (1 - beta) * q
    expected = beta * np_kl(p, m) + (1 - beta) * np_kl(q, m)
    close(rows(make("jsd", beta=beta), s, t), expected)


def test_jsd_endpoints_are_exact_forward_and_reverse_kl():
    s, t = logits_pair(8, 3.0)
    assert torch.equal(rows(make("jsd", beta=0.0), s, t), rows(make("fkl"), s, t))
    assert torch.equal(rows(make("jsd", beta=1.0), s, t), rows(make("rkl"), s, t))


def test_jsd_is_not_continuous_at_the_endpoints():
    """Endpoint special-casing, documented: GKD defines beta=0 as forward KL and beta=1 as reverse KL.

    The mixture formula itself tends to 0 at both ends (M -> q, resp. M -> p), so jsd(beta) for small beta
    is about beta * KL(p || q), *not* about KL(p || q). No continuity at the endpoints is expected; this test
    pins down that the endpoints are special cases and the interior follows the formula.
    """
    s, t = logits_pair(9)
    fkl = rows(make("fkl"), s, t)
    rkl = rows(make("rkl"), s, t)
    eps = 1e-4
    near0 = rows(make("jsd", beta=eps), s, t)
    near1 = rows(make("jsd", beta=1 - eps), s, t)
    close(near0 / eps, fkl, rtol=2e-2, atol=1e-4)
    close(near1 / eps, rkl, rtol=2e-2, atol=1e-4)
    assert (near0 < 0.01 * fkl).all()


# --------------------------------------------------------------------------------------------- TVD


@pytest.mark.parametrize("scale", SCALES)
def test_tvd_hand_formula(scale):
    s, t = logits_pair(10, scale)
    expected = 0.5 * np.abs(probs64(t) - probs64(s)).sum(-1)
    value = rows(make("tvd"), s, t)
    close(value, expected)
    assert ((value >= 0) & (value <= 1 + 1e-6)).all()


def test_tvd_bounds_at_the_extremes():
    teacher = torch.full((2, V), -50.0)
    student = torch.full((2, V), -50.0)
    teacher[:, 0] = 50.0
    student[0, 1] = 50.0  # disjoint supports: distance 1
    student[1, 0] = 50.0  # same point mass: distance 0
    value = rows(make("tvd"), student, teacher)
    assert value[0].item() == pytest.approx(1.0, abs=1e-6)
    assert value[1].item() == pytest.approx(0.0, abs=1e-6)
    assert value.max().item() <= 1.0 + 1e-6


# --------------------------------------------------------------------------------------------- skew KL


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("scale", [1.0, 6.0])
def test_skew_hand_formulas(alpha, scale):
    s, t = logits_pair(11, scale)
    p, q = probs64(t), probs64(s)
    mix_f = alpha * p + (1 - alpha) * q
    mix_r = alpha * q + (1 - alpha) * p
    close(rows(make("sfkl", alpha=alpha), s, t), np_kl(p, mix_f))
    close(rows(make("srkl", alpha=alpha), s, t), np_kl(q, mix_r))


def test_skew_default_alpha_is_distillm():
    assert make("sfkl").params.alpha == 0.1
    assert make("srkl").params.alpha == 0.1


def test_skew_alpha_zero_is_plain_kl():
    s, t = logits_pair(12, 3.0)
    assert torch.equal(rows(make("sfkl", alpha=0.0), s, t), rows(make("fkl"), s, t))
    assert torch.equal(rows(make("srkl", alpha=0.0), s, t), rows(make("rkl"), s, t))


def test_skew_is_bounded_by_log_one_over_alpha():
    """alpha * p <= M, so KL(p || M) <= log(1 / alpha) even for disjoint supports."""
    teacher = torch.full((1, V), -40.0)
    student = torch.full((1, V), -40.0)
    teacher[0, 0] = 40.0
    student[0, 1] = 40.0
    for name in ("sfkl", "srkl"):
        value = rows(make(name, alpha=0.1), student, teacher)
        assert value.item() <= math.log(10) + 1e-5
        assert value.item() == pytest.approx(math.log(10), rel=1e-4)


# --------------------------------------------------------------------------------------------- AKL


def akl_python(p: list[float], q: list[float], mu: float) -> float:
    """Adaptive KL from plain Python floats (independent of the plugin's code)."""
    order = sorted(range(len(p)), key=lambda i: -p[i])
    head, cum = set(), 0.0
    for rank, i in enumerate(order):
        cum += p[i]
        if rank == 0 or cum <= mu:
            head.add(i)
    gap_head = sum(abs(p[i] - q[i]) for i in head)
    gap_tail = sum(abs(p[i] - q[i]) for i in range(len(p)) if i not in head)
    fkl = sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
    rkl = sum(b * math.log(b / a) for a, b in zip(p, q, strict=True))
    return gap_head / (gap_head + gap_tail) * fkl + gap_tail / (gap_head + gap_tail) * rkl


def akl_value(p: list[float], q: list[float], mu: float) -> float:
    teacher = torch.tensor([p]).log()
    student = torch.tensor([q]).log()
    return rows(make("akl", mu=mu), student, teacher).item()


# Hand-worked example, vocabulary 4 (logits are log-probabilities, so softmax gives p and q back):
#   token        0     1     2     3
#   p (teacher)  0.2   0.4   0.1   0.3
#   q (student)  0.1   0.2   0.3   0.4
# Teacher order by probability: token 1 (0.4), token 3 (0.3), token 0 (0.2), token 2 (0.1);
# cumulative teacher probability 0.4, 0.7, 0.9, 1.0.
P_HAND = [0.2, 0.4, 0.1, 0.3]
Q_HAND = [0.1, 0.2, 0.3, 0.4]
# FKL = KL(p||q) = 0.2 ln 2 + 0.4 ln 2 + 0.1 ln(1/3) + 0.3 ln(3/4)
#     = 0.138629 + 0.277259 - 0.109861 - 0.086305 = 0.219722
# RKL = KL(q||p) = 0.1 ln(1/2) + 0.2 ln(1/2) + 0.3 ln 3 + 0.4 ln(4/3)
#     = -0.069315 - 0.138629 + 0.329584 + 0.115073 = 0.236712
FKL_HAND = 0.2 * math.log(2) + 0.4 * math.log(2) + 0.1 * math.log(1 / 3) + 0.3 * math.log(3 / 4)
RKL_HAND = 0.1 * math.log(1 / 2) + 0.2 * math.log(1 / 2) + 0.3 * math.log(3) + 0.4 * math.log(4 / 3)


def test_akl_hand_example_mu_half():
    # mu = 0.5: head = {token 1} (cumulative 0.4 <= 0.5; adding token 3 gives 0.7 > 0.5), tail = {3, 0, 2}.
    # gap_head = |0.4 - 0.2| = 0.2
    # gap_tail = |0.3 - 0.4| + |0.2 - 0.1| + |0.1 - 0.3| = 0.1 + 0.1 + 0.2 = 0.4
    # weights: head 0.2 / 0.6 = 1/3 (on FKL), tail 0.4 / 0.6 = 2/3 (on RKL)
    # AKL = 1/3 * 0.219722 + 2/3 * 0.236712 = 0.073241 + 0.157808 = 0.231049
    assert abs(FKL_HAND - 0.219722) < 1e-6
    assert abs(RKL_HAND - 0.236712) < 1e-6
    expected = FKL_HAND / 3 + 2 * RKL_HAND / 3
    assert expected == pytest.approx(0.231049, abs=1e-6)
    assert akl_python(P_HAND, Q_HAND, 0.5) == pytest.approx(expected, rel=1e-12)
    assert akl_value(P_HAND, Q_HAND, 0.5) == pytest.approx(expected, rel=1e-5)


def test_akl_hand_example_mu_0_8():
    # mu = 0.8: head = {token 1, token 3} (cumulative 0.7 <= 0.8), tail = {0, 2}.
    # gap_head = 0.2 + 0.1 = 0.3, gap_tail = 0.1 + 0.2 = 0.3 -> weights 1/2, 1/2
    # AKL = (0.219722 + 0.236712) / 2 = 0.228217
    expected = 0.5 * FKL_HAND + 0.5 * RKL_HAND
    assert expected == pytest.approx(0.228217, abs=1e-6)
    assert akl_value(P_HAND, Q_HAND, 0.8) == pytest.approx(expected, rel=1e-5)


def test_akl_top_token_is_always_head():
    # p = (0.7, 0.1, 0.1, 0.1), q = (0.4, 0.05, 0.3, 0.25), mu = 0.5: the top token alone already exceeds mu
    # but is still the head. gap_head = 0.3; gap_tail = 0.05 + 0.2 + 0.15 = 0.4 -> weights 3/7, 4/7.
    # FKL = 0.7 ln(7/4) + 0.1 ln 2 + 0.1 ln(1/3) + 0.1 ln(2/5) = 0.391731 + 0.069315 - 0.109861 - 0.091629
    #     = 0.259556
    # RKL = 0.4 ln(4/7) + 0.05 ln(1/2) + 0.3 ln 3 + 0.25 ln(5/2) = -0.223846 - 0.034657 + 0.329584 + 0.229073
    #     = 0.300153
    # AKL = 3/7 * 0.259556 + 4/7 * 0.300153 = 0.282754
    p, q = [0.7, 0.1, 0.1, 0.1], [0.4, 0.05, 0.3, 0.25]
    assert akl_python(p, q, 0.5) == pytest.approx(0.282754, abs=1e-6)
    assert akl_value(p, q, 0.5) == pytest.approx(0.282754, rel=1e-5)


@pytest.mark.parametrize("mu", [0.2, 0.5, 1.0])
def test_akl_is_a_convex_combination_of_fkl_and_rkl(mu):
    s, t = logits_pair(17, 3.0)
    value = rows(make("akl", mu=mu), s, t)
    fkl, rkl = rows(make("fkl"), s, t), rows(make("rkl"), s, t)
    assert (value >= torch.minimum(fkl, rkl) - 1e-6).all()
    assert (value <= torch.maximum(fkl, rkl) + 1e-6).all()


@pytest.mark.parametrize("mu", [0.3, 0.5, 0.9])
def test_akl_random_rows_match_python_reference(mu):
    s, t = logits_pair(13, 1.5)
    p, q = probs64(t), probs64(s)
    expected = [akl_python(list(p[i]), list(q[i]), mu) for i in range(N)]
    close(rows(make("akl", mu=mu), s, t), expected)


def test_akl_weights_carry_no_gradient():
    """The gap weights are constants in backward: grad AKL = w_head grad FKL + w_tail grad RKL."""
    teacher = torch.tensor([P_HAND]).log()
    student = torch.tensor([Q_HAND]).log()
    s1 = student.clone().requires_grad_()
    mask = torch.ones(1, dtype=torch.bool)
    token_divergence_loss(make("akl", mu=0.5), s1, teacher, torch.zeros(1, dtype=torch.long), mask).backward()
    s2 = student.double().requires_grad_()
    p_dist, q_dist = Categorical(logits=teacher.double()), Categorical(logits=s2)
    (kl_divergence(p_dist, q_dist) / 3 + 2 * kl_divergence(q_dist, p_dist) / 3).sum().backward()
    torch.testing.assert_close(s1.grad.double(), s2.grad, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------------------------- temperature


TEMPERATURE_CASES = [(name, {}) for name in ("fkl", "rkl", "tvd", "akl", "sft")] + [
    ("jsd", {"beta": 0.3}),
    ("sfkl", {"alpha": 0.1}),
    ("srkl", {"alpha": 0.1}),
]


@pytest.mark.parametrize("temperature", [0.5, 2.0])
@pytest.mark.parametrize(("name", "opts"), TEMPERATURE_CASES, ids=[c[0] for c in TEMPERATURE_CASES])
def test_temperature_equals_scaled_logits(name, opts, temperature):
    s, t = logits_pair(14)
    targets = torch.randint(0, V, (N,))
    scaled = make(name, **opts, temperature=temperature)
    plain = make(name, **opts)
    teacher_t = t if scaled.needs_teacher else None
    teacher_scaled = t / temperature if scaled.needs_teacher else None
    close(rows(scaled, s, teacher_t, targets), rows(plain, s / temperature, teacher_scaled, targets), rtol=1e-5)


def test_temperature_has_no_hidden_tau_squared():
    s, t = logits_pair(15)
    expected = kl_divergence(Categorical(logits=t.double() / 2), Categorical(logits=s.double() / 2))
    close(rows(make("fkl", temperature=2.0), s, t), expected)


def test_temperature_registered_for_every_token_divergence():
    from minillm_distill.divergence import TokenDivergence

    for entry in load_plugins().divergences.entries():
        if issubclass(entry.cls, TokenDivergence):
            assert "temperature" in entry.cls.Params.model_fields, entry.name


# --------------------------------------------------------------------------------------------- SFT


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sft_matches_cross_entropy(temperature):
    g = torch.Generator().manual_seed(16)
    logits = torch.randn(3, 4, V, generator=g) * 3
    targets = torch.randint(0, V, (3, 4), generator=g)
    targets[0, :2] = -100
    targets[2, 3] = -100
    mask = targets != -100

    s1 = logits.clone().requires_grad_()
    value = token_divergence_loss(make("sft", temperature=temperature), s1, None, targets, mask)
    value.backward()

    s2 = logits.double().requires_grad_()
    expected = F.cross_entropy(s2.reshape(-1, V) / temperature, targets.reshape(-1), ignore_index=-100)
    expected.backward()

    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(s1.grad.double(), s2.grad, rtol=1e-4, atol=1e-7)


def test_sft_needs_no_teacher():
    sft = make("sft")
    assert sft.needs_teacher is False
    for name in ("fkl", "rkl", "jsd", "tvd", "sfkl", "srkl", "akl"):
        assert make(name).needs_teacher is True
