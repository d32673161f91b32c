"""Tests of the example plugin's classes, by hand-derived values and with minillm's shipped checks.

Run them with the plugin installed (``pip install -e .`` here, then ``pytest``); minillm's own test suite
runs them too (from a source checkout, the ``src`` folder is used when the package is not installed).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("minillm_example_plugin") is None:  # a source checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from minillm_example_plugin import GeometricMixedSampler, Hellinger, ReinforceRKL, geometric_mixture
from minillm_example_plugin.reinforce import discounted_returns

from minillm_distill.api import (
    PromptBatch,
    ResponseScores,
    RolloutBatch,
    SamplerContext,
    StepNorm,
    check_divergence,
    check_sampler,
)
from minillm_distill.testing import plugin_checks, run_plugin_check


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ geometric_mixed


def test_geometric_mixture_by_hand():
    q, p = torch.tensor([[0.8, 0.2]]), torch.tensor([[0.2, 0.8]])
    a, b = 0.8**0.75 * 0.2**0.25, 0.2**0.75 * 0.8**0.25
    torch.testing.assert_close(geometric_mixture(0.25)(q, p), torch.tensor([[a / (a + b), b / (a + b)]]))
    # equal exponents of mirrored distributions: uniform
    torch.testing.assert_close(geometric_mixture(0.5)(q, p), torch.tensor([[0.5, 0.5]]))
    # the end points are the models themselves
    torch.testing.assert_close(geometric_mixture(0.0)(q, p), q)
    torch.testing.assert_close(geometric_mixture(1.0)(q, p), p)


def test_geometric_mixture_keeps_zeros_and_never_returns_an_empty_row():
    q = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    p = torch.tensor([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    m = geometric_mixture(0.5)(q, p)
    # row 0: sqrt(0.125) on the two shared tokens, 0 where q is 0; row 1: no token in common -> arithmetic mixture
    torch.testing.assert_close(m, torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]))
    # alpha = 0: a teacher zero does not matter (p^0 = 1), no nan
    torch.testing.assert_close(geometric_mixture(0.0)(q[1:], p[1:]), q[1:])


def test_sampler_at_alpha_0_has_unit_importance_weights():
    """Drawn from the student itself, each weight q(y) / m(y) is 1."""
    from minillm_distill.api import tiny_models

    models = tiny_models()
    sampler = GeometricMixedSampler.from_options({"alpha": 0.0, "max_new_tokens": 6})
    ctx = SamplerContext(
        models.student, models.teacher, models.tokenizer, step=0, generator=torch.Generator().manual_seed(3)
    )
    rollout = sampler.sample(PromptBatch(models.batch.prompt_ids, models.batch.prompt_mask), ctx)
    assert rollout.importance_weights is not None and rollout.response_mask.sum() > 0
    torch.testing.assert_close(rollout.importance_weights, torch.ones_like(rollout.importance_weights))
    mixed = GeometricMixedSampler.from_options({"alpha": 0.7, "max_new_tokens": 6}).sample(
        PromptBatch(models.batch.prompt_ids, models.batch.prompt_mask),
        SamplerContext(
            models.student, models.teacher, models.tokenizer, step=0, generator=torch.Generator().manual_seed(3)
        ),
    )
    valid = mixed.response_mask.bool()
    want = mixed.behaviour_logprobs.exp() / mixed.extras["sampling_probs"]
    torch.testing.assert_close(mixed.importance_weights[valid], want[valid])
    assert not torch.allclose(mixed.importance_weights[valid], torch.ones_like(want[valid]))


# ------------------------------------------------------------------------------------------ reinforce_rkl


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    mask = torch.tensor([[True, True, True, False]])
    # G_2 = 3, G_1 = 2 + 0.5 * 3 = 3.5, G_0 = 1 + 0.5 * 3.5 = 2.75; the masked 9 is not a reward
    torch.testing.assert_close(discounted_returns(rewards, mask, 0.5), torch.tensor([[2.75, 3.5, 3.0, 0.0]]))
    torch.testing.assert_close(discounted_returns(rewards, mask, 1.0), torch.tensor([[6.0, 5.0, 3.0, 0.0]]))


def test_reinforce_gradient_is_the_exact_gradient_of_the_kl():
    """One-token responses, every token of a 4-word vocabulary once, drawn uniformly (m = 1/4, so the weights
    are w = q / m): the importance-weighted average over the batch is the expectation under q, and the
    gradient of the loss is exactly grad KL(q || p) = q * (log q - log p - KL) with respect to the logits."""
    v = 4
    z = torch.tensor([0.3, -1.2, 2.0, 0.1], dtype=torch.float64, requires_grad=True)
    logp = torch.log_softmax(torch.tensor([1.0, 0.5, -0.7, 0.2], dtype=torch.float64), dim=-1)
    logq = torch.log_softmax(z.detach(), dim=-1)
    ids = torch.arange(v)[:, None]  # response y = v in row v
    batch = RolloutBatch(
        prompt_ids=torch.zeros(v, 1, dtype=torch.long),
        prompt_mask=torch.ones(v, 1, dtype=torch.long),
        response_ids=ids,
        response_mask=torch.ones(v, 1, dtype=torch.long),
        behaviour_logprobs=logq[ids].float(),
        teacher_logprobs=logp[ids].float(),
        importance_weights=(logq.exp() * v)[ids].float(),  # q(y) / (1 / V)
    )
    div = ReinforceRKL()
    (prepared,), metrics = div.prepare([batch], reduce=_Identity())
    loss, _ = div.loss(ResponseScores.from_logits(z.float().expand(v, 1, v)), None, batch, prepared, StepNorm(v, v))
    loss.backward()
    q = logq.exp()
    kl = (q * (logq - logp)).sum()
    torch.testing.assert_close(z.grad, q * (logq - logp - kl), rtol=1e-5, atol=1e-6)
    assert metrics["reward"] == pytest.approx(-(logq - logp).mean().item(), rel=1e-5)  # the batch's mean reward
    # the surrogate's value is -E_q[G] = KL(q || p) itself (ratio 1 at sampling time)
    assert loss.item() == pytest.approx(kl.item(), rel=1e-5)


class _Identity:
    def sum(self, t):
        return t


# ------------------------------------------------------------------------------------------ the shipped checks


# each check of `minillm plugins check` on each option set, a test of its own (ids like
# "hellinger gradient[defaults]"): `pytest -k "hellinger and gradient"` runs those
@pytest.mark.parametrize("item", plugin_checks(Hellinger) + plugin_checks(ReinforceRKL))
def test_divergences_pass_minillm_plugins_check(item):
    run_plugin_check(item)


def test_every_check_ran_over_several_option_sets():
    assert len(check_divergence(Hellinger)) == 5 and all(r.cases > 1 for r in check_divergence(ReinforceRKL))


def test_sampler_passes_minillm_plugins_check():
    results = check_sampler(GeometricMixedSampler)
    assert results and all(r.passed for r in results), [f"{r.check}: {r.failure}" for r in results if not r.passed]
    assert results[0].cases == 12  # the defaults, then each GenerationParams option and alpha varied
