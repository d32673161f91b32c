"""The ``minillm`` divergence (MiniLLM's reverse-KL policy gradient): worked examples and unbiasedness.

1. Worked examples on tiny tensors (3 tokens, vocabulary 4): every expected value is a literal computed by
   hand, with the arithmetic in the comment next to it (never by calling the code under test).
2. Unbiasedness on an exactly enumerable toy "model" (vocabulary 3, 2-token responses, logits a learnable
   table indexed by position and previous token): the exact gradient of the sequence-level KL(q || p), by
   enumerating the 9 sequences and autograd, against the mean of many sampled estimates from the plugin's
   loss, within 5% (relative to the gradient's norm; the sampling standard error is checked to be < 2%).
3. Registry presence and ``Params`` validation.
"""

from __future__ import annotations

import math
import threading

import pytest
import torch
from pydantic import ValidationError

from minillm_distill.builtins.divergences.minillm.returns import whiten
from minillm_distill.divergence import Reducer, SequenceDivergence, StepNorm
from minillm_distill.plugins import load_plugins
from minillm_distill.sampler import RolloutBatch

LN2 = math.log(2.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors are tiny: thread hand-offs would cost more than the math (and the runners have 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(**opts):
    return load_plugins().divergences.get("minillm").from_options(opts)


def rollout(response_ids, mask, behaviour, teacher, weights=None) -> RolloutBatch:
    ids = torch.as_tensor(response_ids, dtype=torch.long)
    n = ids.size(0)
    return RolloutBatch(
        prompt_ids=torch.zeros(n, 1, dtype=torch.long),
        prompt_mask=torch.ones(n, 1, dtype=torch.long),
        response_ids=ids,
        response_mask=torch.as_tensor(mask, dtype=torch.long),
        behaviour_logprobs=torch.as_tensor(behaviour, dtype=torch.float32),
        teacher_logprobs=torch.as_tensor(teacher, dtype=torch.float32),
        importance_weights=None if weights is None else torch.as_tensor(weights, dtype=torch.float32),
    )


def close(actual, expected, tol=1e-5):
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, atol=tol, rtol=tol), f"\n{actual}\n!=\n{expected}"


# =========================================================================================================
# 1. Worked examples
# =========================================================================================================

# Two responses of 3 tokens; the second has 2 valid tokens (its third position holds junk that must not count).
#   row 0: log p - log q_old = [-1.5 - -1.0, -1.0 - -2.0, -30.5 - -0.5] = [-0.5, 1.0, -30.0]
#   row 1: log p - log q_old = [-2.0 - -1.0,  0.0 - -1.0, (masked)]     = [-1.0, 1.0, -]
EXAMPLE = dict(
    response_ids=[[0, 1, 2], [3, 2, 0]],
    mask=[[1, 1, 1], [1, 1, 0]],
    behaviour=[[-1.0, -2.0, -0.5], [-1.0, -1.0, -5.0]],
    teacher=[[-1.5, -1.0, -30.5], [-2.0, 0.0, 50.0]],
    weights=[[1.0, 0.5, 2.0], [1.0, 4.0, 7.0]],
)
# scaling 0.5, clip 10 for the examples:  r = clip(raw / 0.5, -10, 10)
#   row 0: [-0.5/0.5, 1/0.5, -30/0.5 = -60 -> -10] = [-1, 2, -10]
#   row 1: [-1/0.5, 1/0.5, 0 (masked)]            = [-2, 2, 0]
PLAIN = dict(reward_scaling=0.5, reward_clip=10.0, gamma=0.5, length_norm=False, whiten_advantages=False)


def prepared_advantages(**opts) -> torch.Tensor:
    prepared, _ = make(**{**PLAIN, **opts}).prepare([rollout(**EXAMPLE)], Reducer())
    return prepared[0]["advantages"]


def test_rewards_scaling_and_clipping_reference_returns():
    # gamma = 0.5, include_current_reward (reference): G_t = r_t + 0.5 G_{t+1}
    #   row 0: G_3 = -10; G_2 = 2 + 0.5 * -10 = -3; G_1 = -1 + 0.5 * -3 = -2.5
    #   row 1: G_2 = 2;   G_1 = -2 + 0.5 * 2 = -1;  masked position: 0
    close(prepared_advantages(), [[-2.5, -3.0, -10.0], [-1.0, 2.0, 0.0]])


def test_rewards_without_clipping():
    # reward_clip None: row 0's last reward stays -60; G_2 = 2 + 0.5 * -60 = -28; G_1 = -1 + 0.5 * -28 = -15
    close(prepared_advantages(reward_clip=None), [[-15.0, -28.0, -60.0], [-1.0, 2.0, 0.0]])


def test_returns_paper_variant_start_at_next_token():
    # include_current_reward False (paper): A_t = R_{t+1} = G_{t+1}, 0 at the last valid token
    #   row 0: [G_2, G_3, 0] = [-3, -10, 0];  row 1: [G_2, 0, 0] = [2, 0, 0]
    close(prepared_advantages(include_current_reward=False), [[-3.0, -10.0, 0.0], [2.0, 0.0, 0.0]])


def test_returns_undiscounted():
    # gamma = 1: row 0: G = [-1 + 2 - 10, 2 - 10, -10] = [-9, -8, -10];  row 1: [-2 + 2, 2] = [0, 2]
    close(prepared_advantages(gamma=1.0), [[-9.0, -8.0, -10.0], [0.0, 2.0, 0.0]])


def test_length_normalisation_reference():
    # divide by the number of rewards in each return (tokens at positions >= t)
    #   row 0: counts [3, 2, 1] -> [-2.5 / 3, -3 / 2, -10 / 1] = [-0.8333333, -1.5, -10]
    #   row 1: counts [2, 1]    -> [-1 / 2, 2 / 1]             = [-0.5, 2]
    close(prepared_advantages(length_norm=True), [[-2.5 / 3, -1.5, -10.0], [-0.5, 2.0, 0.0]])


def test_length_normalisation_paper():
    # paper: R^Norm_{t+1} = R_{t+1} / (number of tokens after t); an empty return stays 0
    #   row 0: [-3 / 2, -10 / 1, 0] = [-1.5, -10, 0];  row 1: [2 / 1, 0] = [2, 0]
    close(
        prepared_advantages(length_norm=True, include_current_reward=False),
        [[-1.5, -10.0, 0.0], [2.0, 0.0, 0.0]],
    )


def test_whitening_helper_population_statistics():
    # values 2, 4, 4, 4, 5, 5, 7, 9: mean 40 / 8 = 5; variance (9 + 1 + 1 + 1 + 0 + 0 + 4 + 16) / 8 = 4; std 2
    # whitened (x - 5) / 2 = -1.5, -0.5, -0.5, -0.5, 0, 0, 1, 2; the masked 100 is ignored and set to 0
    values = [torch.tensor([[2.0, 4.0, 4.0], [4.0, 5.0, 100.0]]), torch.tensor([[5.0, 7.0, 9.0]])]
    masks = [torch.tensor([[True, True, True], [True, True, False]]), torch.tensor([[True, True, True]])]
    out, mean, std = whiten(values, masks, Reducer())
    close(out[0], [[-1.5, -0.5, -0.5], [-0.5, 0.0, 0.0]])
    close(out[1], [[0.0, 1.0, 2.0]])
    assert mean == pytest.approx(5.0) and std == pytest.approx(2.0)


def test_whitening_in_prepare():
    # the reference-variant advantages above, valid entries -2.5, -3, -10, -1, 2:
    #   mean = -14.5 / 5 = -2.9; E[x^2] = (6.25 + 9 + 100 + 1 + 4) / 5 = 24.05; var = 24.05 - 2.9^2 = 15.64
    #   std = sqrt(15.64) = 3.9547440; whitened (x + 2.9) / 3.9547440:
    #   0.4 -> 0.1011443, -0.1 -> -0.0252861, -7.1 -> -1.7953122, 1.9 -> 0.4804357, 4.9 -> 1.2390183
    got = prepared_advantages(whiten_advantages=True)
    close(got, [[0.1011443, -0.0252861, -1.7953122], [0.4804357, 1.2390183, 0.0]])


def test_phase_metrics():
    _, m = make(**{**PLAIN, "length_norm": True}).prepare([rollout(**EXAMPLE)], Reducer())
    # reward: (-1 + 2 - 10 - 2 + 2) / 5 valid tokens = -1.8
    assert m["reward"] == pytest.approx(-1.8)
    # return: row 0 (-1 + 0.5 * 2 + 0.25 * -10) / 3 = -2.5 / 3; row 1 (-2 + 0.5 * 2) / 2 = -0.5;
    #   mean (-0.8333333 - 0.5) / 2 = -0.6666667
    assert m["return"] == pytest.approx(-2.0 / 3.0)
    # k3 = e^lr - 1 - lr at lr = log p - log q_old:
    #   -0.5 -> 0.6065307 - 1 + 0.5 = 0.1065307;  1.0 -> 2.7182818 - 2 = 0.7182818;
    #   -30  -> ~0 - 1 + 30 = 29.0;              -1.0 -> 0.3678794 - 1 + 1 = 0.3678794
    # importance-weighted: 1 * 0.1065307 + 0.5 * 0.7182818 + 2 * 29 + 1 * 0.3678794 + 4 * 0.7182818 = 61.7066783
    assert m["rev_kl"] == pytest.approx(61.7066783 / 5, rel=1e-6)  # per valid token: 12.3413357
    assert m["rev_kl_seq"] == pytest.approx(61.7066783 / 2, rel=1e-6)  # per sequence: 30.8533392
    assert m["rollout_length"] == pytest.approx(2.5)  # (3 + 2) / 2
    # weights of valid tokens 1, 0.5, 2, 1, 4 (the masked 7 is ignored): mean 8.5 / 5 = 1.7, min 0.5, max 4
    assert (m["iw_mean"], m["iw_min"], m["iw_max"]) == pytest.approx((1.7, 0.5, 4.0))
    assert (m["rollout_sequences"], m["rollout_tokens"]) == (2.0, 5.0)


def test_prefix_importance_weights():
    # w = [0.5, 2, 4], every raw reward 1 (scaling 1), gamma 1, no normalisation
    #   W_t = prod_{s<=t} w_s = [0.5, 1, 4];  weighted rewards W_t r_t = [0.5, 1, 4]
    batch = rollout([[0, 1, 2]], [[1, 1, 1]], [[-2.0, -2.0, -2.0]], [[-1.0, -1.0, -1.0]], [[0.5, 2.0, 4.0]])
    opts = dict(reward_scaling=1.0, gamma=1.0, length_norm=False, whiten_advantages=False)
    opts["importance_weighting"] = "prefix"
    prepared, _ = make(**opts, include_current_reward=False).prepare([batch], Reducer())
    # paper returns over the weighted rewards: [1 + 4, 4, 0] = [5, 4, 0]; divided by w_t (rho_t carries it):
    #   [5 / 0.5, 4 / 2, 0 / 4] = [10, 2, 0]   (so A_t w_t = sum_{t'>t} W_t' r_t')
    close(prepared[0]["advantages"], [[10.0, 2.0, 0.0]])
    # single-step term weighted by the prefix weight W_{t-1} = [1, 0.5, 1]
    close(prepared[0]["single_step_weights"], [[1.0, 0.5, 1.0]])
    prepared, _ = make(**opts, include_current_reward=True).prepare([batch], Reducer())
    # reference returns: [0.5 + 1 + 4, 1 + 4, 4] = [5.5, 5, 4] / w = [11, 2.5, 1]
    close(prepared[0]["advantages"], [[11.0, 2.5, 1.0]])
    prepared, _ = make(**opts, single_step_weighted=True).prepare([batch], Reducer())
    close(prepared[0]["single_step_weights"], [[0.5, 1.0, 4.0]])  # W_{t-1} * w_t = W_t


def test_prefix_weight_underflowing_to_zero_stays_finite_and_exact():
    # w = [0.5, 0, 4] (a teacher-drawn token the student all but excludes: q(y_1) underflowed), rewards 1,
    # gamma 1, no normalisation. W_t = [0.5, 0, 0]; dividing by w_1 = 0 gave inf and a nan loss before.
    batch = rollout([[0, 1, 2]], [[1, 1, 1]], [[-2.0, -2.0, -2.0]], [[-1.0, -1.0, -1.0]], [[0.5, 0.0, 4.0]])
    opts = dict(reward_scaling=1.0, gamma=1.0, length_norm=False, whiten_advantages=False)
    opts["importance_weighting"] = "prefix"
    div = make(**opts, include_current_reward=False)
    prepared, _ = div.prepare([batch], Reducer())
    # A_t = sum_{t'>t} W_t' r_t' / w_t: t0 (0 + 0) / 0.5 = 0; t1 the limit W_2 / w_1 = W_0 w_2 = 0.5 * 4 = 2; t2 0
    close(prepared[0]["advantages"], [[0.0, 2.0, 0.0]])
    close(prepared[0]["single_step_weights"], [[1.0, 0.5, 0.0]])  # W_{t-1}
    prepared_cur, _ = make(**opts, include_current_reward=True).prepare([batch], Reducer())
    # G_t / w_t: t0 (0.5 + 0 + 0) / 0.5 = 1; t1 W_0 (r_1 + w_2 r_2) = 0.5 * 5 = 2.5; t2 W_1 r_2 = 0
    close(prepared_cur[0]["advantages"], [[1.0, 2.5, 0.0]])
    logits = torch.randn(1, 3, 4, requires_grad=True)
    loss, _ = div.loss(logits, torch.randn(1, 3, 4), batch, prepared[0], StepNorm(tokens=3, sequences=1))
    loss.backward()
    assert math.isfinite(loss.item()) and bool(torch.isfinite(logits.grad).all())


# --- the loss: ratio clipping, importance weights, single-step KL ---------------------------------------

UNIFORM = torch.zeros(1, 3, 4)  # student logits: q = 1/4 everywhere, so log q(y) = log(1/4) for any y


def pg_example(weight_in_clip: bool, **opts):
    """ratio q_theta/q_old = [1.5, 0.5, 1.0], w = [1, 1, 0.5], A = [1, 2, -1], eps 0.2, norm 3 tokens."""
    logits = UNIFORM.clone().requires_grad_()
    old = math.log(0.25) - torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
    batch = rollout([[0, 1, 2]], [[1, 1, 1]], old, [[-1.0, -1.0, -1.0]], [[1.0, 1.0, 0.5]])
    prepared = {
        "advantages": torch.tensor([[1.0, 2.0, -1.0]]),
        "weights": torch.tensor([[1.0, 1.0, 0.5]]),
        "single_step_weights": torch.ones(1, 3),
    }
    div = make(**{"single_step_coef": 0.0, "ratio_clip": 0.2, "weight_in_clip": weight_in_clip, **opts})
    loss, metrics = div.loss(logits, torch.zeros(1, 3, 4), batch, prepared, StepNorm(tokens=3, sequences=1))
    loss.backward()
    return loss, metrics, logits.grad


def test_ratio_clipping_weight_inside_clip():
    loss, metrics, grad = pg_example(weight_in_clip=True)
    # rho = ratio * w = [1.5, 0.5, 0.5]
    #   t1: A =  1: max(-1.5, -1 * 1.2) = -1.2  (clipped: A > 0 and rho > 1.2)
    #   t2: A =  2: max(-2 * 0.5, -2 * 0.8) = max(-1.0, -1.6) = -1.0  (not clipped)
    #   t3: A = -1: max(0.5, 0.8) = 0.8  (clipped: A < 0 and rho < 0.8; w alone pushes it out of the region)
    # (-1.2 - 1.0 + 0.8) / 3 = -1.4 / 3
    assert loss.item() == pytest.approx(-1.4 / 3, abs=1e-6)
    assert metrics["pg_loss"].item() == pytest.approx(-1.4 / 3, abs=1e-6)
    assert float(metrics["clip_fraction"]) == pytest.approx(2 / 3)
    # only t2 has a gradient: d(-A rho)/d log q = -A rho = -1.0, over 3 tokens; d log q(y)/dz = onehot(y) - 1/4
    #   position 1 (y = 1): -1/3 * [-0.25, 0.75, -0.25, -0.25] = [1/12, -1/4, 1/12, 1/12]
    close(grad, [[[0.0] * 4, [1 / 12, -0.25, 1 / 12, 1 / 12], [0.0] * 4]])
    # policy drift k3 (ratio - 1) - log ratio, weighted: t1 0.5 - log 1.5 = 0.0945349; t2 -0.5 + log 2 = 0.1931472
    #   (0.0945349 + 0.1931472 + 0) / 3 = 0.0958940
    assert float(metrics["policy_kl"]) == pytest.approx(0.0958940, abs=1e-6)


def test_ratio_clipping_weight_outside_clip():
    loss, metrics, grad = pg_example(weight_in_clip=False)
    # only ratio = [1.5, 0.5, 1.0] is clipped, w multiplies the clipped objective:
    #   t1: 1 * max(-1.5, -1.2) = -1.2 (clipped);  t2: 1 * max(-1.0, -1.6) = -1.0;  t3: 0.5 * max(1, 1) = 0.5
    # (-1.2 - 1.0 + 0.5) / 3 = -1.7 / 3
    assert loss.item() == pytest.approx(-1.7 / 3, abs=1e-6)
    assert float(metrics["clip_fraction"]) == pytest.approx(1 / 3)
    # t2 as before; t3: w * (-A) * ratio = 0.5 * 1 * 1 = 0.5 over 3 tokens = 1/6 times (onehot(2) - 1/4):
    #   position 2: [-1/24, -1/24, 1/8, -1/24]
    close(grad, [[[0.0] * 4, [1 / 12, -0.25, 1 / 12, 1 / 12], [-1 / 24, -1 / 24, 1 / 8, -1 / 24]]])


def single_step_example(**opts):
    # student q per position: uniform, uniform, [.5, .25, .125, .125]
    # teacher p per position: [.5, .25, .125, .125], [.4, .4, .1, .1], [.4, .4, .1, .1]
    student = torch.log(torch.tensor([[[0.25] * 4, [0.25] * 4, [0.5, 0.25, 0.125, 0.125]]])).requires_grad_()
    teacher = torch.log(torch.tensor([[[0.5, 0.25, 0.125, 0.125], [0.4, 0.4, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1]]]))
    batch = rollout([[0, 1, 2]], [[1, 1, 1]], [[-1.0] * 3], [[-1.0] * 3], [[1.0, 2.0, 0.5]])
    div = make(**opts)
    prepared = {
        "advantages": torch.zeros(1, 3),  # pg term is exactly 0
        "weights": torch.tensor([[1.0, 2.0, 0.5]]),
        "single_step_weights": torch.tensor([[1.0, 2.0, 0.5]]) if div.params.single_step_weighted else torch.ones(1, 3),
    }
    loss, metrics = div.loss(student, teacher, batch, prepared, StepNorm(tokens=3, sequences=1))
    loss.backward()
    return loss, metrics, student.grad


def test_single_step_reverse_kl_exact():
    loss, metrics, grad = single_step_example()
    # KL(q || p) = sum_v q_v log(q_v / p_v):
    #   t1: 0.25 (log .5 + 0 + log 2 + log 2) = 0.25 log 2                               = 0.1732868
    #   t2: 0.25 (2 log(.25/.4) + 2 log(.25/.1)) = 0.5 log(.625 * 2.5) = log 1.25          = 0.2231436
    #   t3: .5 log(.5/.4) + .25 log(.25/.4) + .25 log(.125/.1) = .75 log 1.25 + .25 log .625 = 0.0498568
    # (the forward KL would give t2 = .8 log 1.6 + .2 log .4 = 0.1927448 and t3 = 0.0541153)
    # (0.1732868 + 0.2231436 + 0.0498568) / 3 = 0.4462872 / 3 = 0.1487624
    assert loss.item() == pytest.approx(0.1487624, abs=1e-6)
    assert float(metrics["single_step_loss"]) == pytest.approx(0.1487624, abs=1e-6)
    assert float(metrics["pg_loss"]) == 0.0
    # gradient of KL(q || p) in the student's logits: q_v (log(q_v / p_v) - KL); t1 over 3 tokens:
    #   0.25 * ([-log 2, 0, log 2, log 2] - 0.1732868) / 3 = [-0.0722028, -0.0144406, 0.0433217, 0.0433217]
    close(grad[0, 0], [-0.0722028, -0.0144406, 0.0433217, 0.0433217])


def test_single_step_weighted_and_coefficient():
    loss, _, _ = single_step_example(single_step_weighted=True)
    # 1 * 0.1732868 + 2 * 0.2231436 + 0.5 * 0.0498568 = 0.6445023; / 3 = 0.2148341
    assert loss.item() == pytest.approx(0.2148341, abs=1e-6)
    loss, metrics, _ = single_step_example(single_step_coef=2.0)
    # coefficient 2 on the loss, the metric stays the term itself: 2 * 0.1487624 = 0.2975248
    assert loss.item() == pytest.approx(0.2975248, abs=1e-6)
    assert float(metrics["single_step_loss"]) == pytest.approx(0.1487624, abs=1e-6)


def test_long_term_coefficient():
    loss, metrics, grad = pg_example(weight_in_clip=False, long_term_coef=0.5)
    # half of the weight-outside-clip example's -1.7 / 3; the metric stays the term itself
    assert loss.item() == pytest.approx(-0.85 / 3, abs=1e-6)
    assert metrics["pg_loss"].item() == pytest.approx(-1.7 / 3, abs=1e-6)
    close(grad, [[[0.0] * 4, [1 / 24, -0.125, 1 / 24, 1 / 24], [-1 / 48, -1 / 48, 1 / 16, -1 / 48]]])
    # the single-step-only ablation: the loss is the exact per-token reverse KL alone, whatever the advantages
    student = torch.log(torch.tensor([[[0.25] * 4, [0.25] * 4, [0.5, 0.25, 0.125, 0.125]]]))
    teacher = torch.log(torch.tensor([[[0.5, 0.25, 0.125, 0.125], [0.4, 0.4, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1]]]))
    batch = rollout([[0, 1, 2]], [[1, 1, 1]], [[-1.0] * 3], [[-1.0] * 3], [[1.0, 1.0, 1.0]])
    prepared = {"advantages": torch.tensor([[5.0, -3.0, 2.0]]), "weights": torch.ones(1, 3)}
    prepared["single_step_weights"] = torch.ones(1, 3)
    for coef, expect in ((0.0, 0.1487624), (1.0, None)):
        loss, m = make(long_term_coef=coef).loss(student, teacher, batch, prepared, StepNorm(tokens=3, sequences=1))
        if expect is not None:
            assert loss.item() == pytest.approx(expect, abs=1e-6)  # see test_single_step_reverse_kl_exact
        else:
            assert loss.item() == pytest.approx(0.1487624 + float(m["pg_loss"]), abs=1e-6)
            assert abs(float(m["pg_loss"])) > 0.1
    with pytest.raises(ValidationError, match="both 0"):
        make(long_term_coef=0.0, single_step_coef=0.0)


def test_pretrain_loss():
    student = torch.zeros(1, 3, 4)  # uniform
    teacher = torch.log(torch.tensor([0.4, 0.4, 0.1, 0.1])).expand(1, 3, 4).clone()
    student[0, 2] = 1e4  # junk at the masked position
    targets = torch.tensor([[0, 1, 2]])
    mask = torch.tensor([[True, True, False]])
    loss, m = make().pretrain_loss(student, teacher, targets, mask, 2)
    # per token: CE = log 4 = 1.3862944; forward KL(p || q) = .8 log 1.6 + .2 log .4 = 0.1927448
    # lm_coef 1, kd_ratio 0.5: 0.5 * 1.3862944 + 0.5 * 0.1927448 = 0.7895196 (2 tokens / 2)
    assert loss.item() == pytest.approx(0.7895196, abs=1e-6)
    assert (float(m["lm_loss"]), float(m["kd_loss"])) == pytest.approx((1.3862944, 0.1927448), abs=1e-6)
    # lm_coef 2, kd_ratio 0 (no teacher needed): 2 * log 4 = 2.7725887; normalised by a global count of 4
    loss, _ = make(lm_coef=2.0, kd_ratio=0.0).pretrain_loss(student, None, targets, mask, 4)
    assert loss.item() == pytest.approx(2.7725887 / 2, abs=1e-6)


# --- conventions: micro-batches, ranks, masking ---------------------------------------------------------


def test_split_into_micro_batches_changes_nothing():
    opts = dict(PLAIN, whiten_advantages=True, length_norm=True)
    whole = rollout(**EXAMPLE)
    parts = [rollout(**{k: v[i : i + 1] for k, v in EXAMPLE.items()}) for i in range(2)]
    div = make(**opts)
    prep_whole, m_whole = div.prepare([whole], Reducer())
    prep_parts, m_parts = div.prepare(parts, Reducer())
    close(torch.cat([p["advantages"] for p in prep_parts]), prep_whole[0]["advantages"])
    assert m_parts == pytest.approx(m_whole)
    g = torch.Generator().manual_seed(0)
    s_logits, t_logits = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    norm = StepNorm(tokens=5, sequences=2)
    total, _ = div.loss(s_logits, t_logits, whole, prep_whole[0], norm)
    summed = sum(div.loss(s_logits[i : i + 1], t_logits[i : i + 1], parts[i], prep_parts[i], norm)[0] for i in range(2))
    assert summed.item() == pytest.approx(total.item(), abs=1e-6)


class _ThreadRanks:
    """Two "ranks" as threads: a Reducer per rank whose collectives meet at a barrier."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.slots: list[torch.Tensor | None] = [None] * world
        self.barrier = threading.Barrier(world)

    def reducer(self, rank: int) -> Reducer:
        ranks = self

        def collective(op):
            def run(t: torch.Tensor) -> torch.Tensor:
                ranks.slots[rank] = t.clone()
                ranks.barrier.wait()
                out = ranks.slots[0]
                for other in ranks.slots[1:]:
                    out = op(out, other)
                ranks.barrier.wait()  # nobody overwrites a slot before every rank has read
                return out

            return run

        r = Reducer()
        r.sum = collective(torch.add)  # type: ignore[method-assign]
        r.min = collective(torch.minimum)  # type: ignore[method-assign]
        r.max = collective(torch.maximum)  # type: ignore[method-assign]
        return r


def test_two_ranks_match_one():
    div = make(**dict(PLAIN, whiten_advantages=True, length_norm=True))
    parts = [rollout(**{k: v[i : i + 1] for k, v in EXAMPLE.items()}) for i in range(2)]
    prep_one, m_one = div.prepare(parts, Reducer())
    ranks = _ThreadRanks(2)
    results: list = [None, None]

    def work(rank: int) -> None:
        results[rank] = div.prepare([parts[rank]], ranks.reducer(rank))

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for rank in range(2):
        prep, metrics = results[rank]
        close(prep[0]["advantages"], prep_one[rank]["advantages"])
        assert metrics == pytest.approx(m_one)


def test_all_masked_micro_batch_and_missing_logprobs():
    div = make()
    batch = rollout([[0, 1, 2]], [[0, 0, 0]], [[0.0] * 3], [[0.0] * 3])
    prepared, metrics = div.prepare([batch], Reducer())
    logits = torch.randn(1, 3, 4, requires_grad=True)
    loss, _ = div.loss(logits, torch.randn(1, 3, 4), batch, prepared[0], StepNorm(1, 1))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    assert metrics["rollout_tokens"] == 0 and math.isfinite(metrics["rev_kl"])
    no_lp = rollout([[0, 1, 2]], [[1, 1, 1]], [[0.0] * 3], [[0.0] * 3])
    no_lp.behaviour_logprobs = None
    with pytest.raises(ValueError, match="behaviour and teacher log-probs"):
        div.prepare([no_lp], Reducer())


# =========================================================================================================
# 2. Unbiasedness on an enumerable toy model
# =========================================================================================================
#
# Student and teacher: vocabulary 3, responses of exactly 2 tokens (no EOS), logits a table: row 0 for the
# first token, rows 1..3 for the second token indexed by the first. q(y) = q1(y1) q2(y2|y1), likewise p.
# The sequence KL(q || p) = sum over the 9 sequences of q(y) log(q(y) / p(y)); its exact gradient comes from
# enumeration + autograd. The plugin sees every sampled sequence as a 2-token response with StepNorm tokens =
# 2N, so 2 x (gradient of its loss) is the mean over the N samples of the per-sequence estimate.
#
# Which settings are exact (gamma = 1, reward_scaling = 1, no reward clipping, no length normalisation, no
# whitening, one PPO step with q_old = q_theta detached):
#   * paper: include_current_reward = False (R_{t+1}) + single-step term.  grad KL = E_q sum_t [-R_{t+1} grad log
#     q(y_t) + grad KL(q_t || p_t)], because E_{y_t~q_t}[-r_t grad log q(y_t)] = grad KL(q_t || p_t) with the
#     prefix fixed: the single-step term is exactly the current reward's share, computed over the vocabulary;
#   * REINFORCE: include_current_reward = True without the single-step term;
#   * with alpha > 0 (tokens from (1 - alpha) q + alpha p): the per-decision ("prefix") weights. The paper's
#     per-token w_t (the default) only corrects the current token, not the prefix or the future tokens
#     inside R_{t+1}, so it is an approximation: the test checks it converges to its own enumerated
#     expectation, which is measurably off the exact gradient.
#   * the reference default (include_current_reward = True *and* the single-step term) counts step t twice:
#     it converges to grad KL + E_q sum_t grad KL(q_t || p_t) (prefix fixed).

V = 3
SAMPLES, CHUNKS = 4096, 8  # 32768 sampled sequences in 8 chunks (the chunks give a standard error)
TOL = 0.05
EXACT_OPTS = dict(gamma=1.0, reward_scaling=1.0, reward_clip=None, length_norm=False, whiten_advantages=False)


class Toy:
    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.s0 = torch.randn(V, generator=g).requires_grad_()
        self.s1 = torch.randn(V, V, generator=g).requires_grad_()
        self.t0 = torch.randn(V, generator=g) * 1.5
        self.t1 = torch.randn(V, V, generator=g) * 1.5

    @property
    def params(self):
        return [self.s0, self.s1]

    def grad(self, value: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, self.params)])

    # -- enumeration --
    def tables(self):
        lq1, lq2 = self.s0.log_softmax(-1), self.s1.log_softmax(-1)  # [V], [V(prev), V]
        lp1, lp2 = self.t0.log_softmax(-1), self.t1.log_softmax(-1)
        return lq1, lq2, lp1, lp2

    def exact_sequence_kl_grad(self) -> torch.Tensor:
        lq1, lq2, lp1, lp2 = self.tables()
        lq = lq1[:, None] + lq2  # log q(y1, y2), all 9 sequences
        lp = lp1[:, None] + lp2
        return self.grad((lq.exp() * (lq - lp)).sum())

    def expected_single_step_grad(self, prefix_probs: torch.Tensor) -> torch.Tensor:
        """grad of KL(q1 || p1) + sum_y1 prefix(y1) KL(q2(.|y1) || p2(.|y1)), prefix probabilities fixed."""
        lq1, lq2, lp1, lp2 = self.tables()
        kl1 = (lq1.exp() * (lq1 - lp1)).sum()
        kl2 = (lq2.exp() * (lq2 - lp2)).sum(-1)
        return self.grad(kl1 + (prefix_probs.detach() * kl2).sum())

    def mixtures(self, alpha: float):
        lq1, lq2, lp1, lp2 = (x.detach() for x in self.tables())
        m1 = (1 - alpha) * lq1.exp() + alpha * lp1.exp()
        m2 = (1 - alpha) * lq2.exp() + alpha * lp2.exp()
        return m1, m2

    def expected_token_weighted_grad(self, alpha: float) -> torch.Tensor:
        """The expectation under the mixture of the per-token-weighted paper estimator (single-step + long-term
        with R_2 = r_2 at t = 1, nothing at t = 2), by enumeration: a surrogate whose gradient it is."""
        lq1, lq2, lp1, lp2 = self.tables()
        m1, m2 = self.mixtures(alpha)
        w1 = lq1.detach().exp() / m1  # per-token weight of the first token
        r2 = (lp2 - lq2).detach()  # [y1, y2]: the reward of the second token
        long_term = (m1[:, None] * m2 * w1[:, None] * (-r2) * lq1[:, None]).sum()
        kl1 = (lq1.exp() * (lq1 - lp1)).sum()
        kl2 = (lq2.exp() * (lq2 - lp2)).sum(-1)
        return self.grad(long_term + kl1 + (m1 * kl2).sum())

    # -- sampling + the plugin --
    def sample(self, alpha: float, n: int, gen: torch.Generator) -> RolloutBatch:
        lq1, lq2, lp1, lp2 = (x.detach() for x in self.tables())
        m1, m2 = self.mixtures(alpha)
        y1 = torch.multinomial(m1, n, replacement=True, generator=gen)
        y2 = torch.multinomial(m2[y1], 1, generator=gen).squeeze(1)
        behaviour = torch.stack([lq1[y1], lq2[y1, y2]], 1)
        teacher = torch.stack([lp1[y1], lp2[y1, y2]], 1)
        weights = behaviour.exp() / torch.stack([m1[y1], m2[y1, y2]], 1)
        ids = torch.stack([y1, y2], 1)
        return rollout(ids, torch.ones(n, 2), behaviour, teacher, weights)

    def logits(self, batch: RolloutBatch):
        y1 = batch.response_ids[:, 0]
        n = y1.numel()
        student = torch.stack([self.s0.expand(n, V), self.s1[y1]], 1)
        teacher = torch.stack([self.t0.expand(n, V), self.t1[y1]], 1)
        return student, teacher

    def plugin_grad(self, div, batch: RolloutBatch) -> torch.Tensor:
        prepared, _ = div.prepare([batch], Reducer())
        n = batch.response_ids.size(0)
        student, teacher = self.logits(batch)
        loss, _ = div.loss(student, teacher, batch, prepared[0], StepNorm(tokens=2 * n, sequences=n))
        return 2.0 * self.grad(loss)  # 2 tokens per sequence: per-token mean -> per-sequence mean

    def sampled_grad(self, alpha: float, seed: int = 1, **opts) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of the plugin's estimates over SAMPLES x CHUNKS sequences, and its standard error."""
        div = make(**{**EXACT_OPTS, **opts})
        gen = torch.Generator().manual_seed(seed)
        chunks = torch.stack([self.plugin_grad(div, self.sample(alpha, SAMPLES, gen)) for _ in range(CHUNKS)])
        return chunks.mean(0), chunks.std(0) / math.sqrt(CHUNKS)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_matches(toy: Toy, target: torch.Tensor, alpha: float, **opts) -> torch.Tensor:
    mean, se = toy.sampled_grad(alpha, **opts)
    assert float(se.norm() / target.norm()) < 0.02, "too few samples for the stated tolerance"
    assert rel(mean, target) < TOL, f"relative error {rel(mean, target):.3f} >= {TOL}\n{mean}\n{target}"
    return mean


@pytest.fixture(scope="module")
def toy() -> Toy:
    return Toy()


def test_paper_decomposition_is_unbiased_on_policy(toy):
    exact = toy.exact_sequence_kl_grad()
    check_matches(toy, exact, 0.0, include_current_reward=False, single_step_coef=1.0)


def test_prefix_weights_are_unbiased_with_teacher_mixed_sampling(toy):
    exact = toy.exact_sequence_kl_grad()
    opts = dict(include_current_reward=False, importance_weighting="prefix", weight_in_clip=False)
    check_matches(toy, exact, 0.4, **opts)


def test_reinforce_without_single_step_is_unbiased(toy):
    exact = toy.exact_sequence_kl_grad()
    check_matches(toy, exact, 0.0, include_current_reward=True, single_step_coef=0.0)


def test_reference_default_counts_the_current_step_twice(toy):
    exact = toy.exact_sequence_kl_grad()
    q1 = toy.s0.detach().softmax(-1)  # on-policy prefix distribution
    target = exact + toy.expected_single_step_grad(q1)
    mean = check_matches(toy, target, 0.0, include_current_reward=True, single_step_coef=1.0)
    assert rel(mean, exact) > 0.3  # far from the exact gradient: the test can tell them apart


def test_token_weights_are_the_papers_approximation(toy):
    exact = toy.exact_sequence_kl_grad()
    approx = toy.expected_token_weighted_grad(0.4)
    mean = check_matches(toy, approx, 0.4, include_current_reward=False, weight_in_clip=False)
    assert rel(mean, exact) > 0.15  # biased for alpha > 0 (the prefix and R_{t+1} follow the mixture)


def test_clip_inactive_at_first_step_is_the_same_estimate(toy):
    """weight_in_clip with a clip that cannot bind gives the same gradient as clipping the policy ratio only."""
    gen = torch.Generator().manual_seed(3)
    batch = toy.sample(0.4, 512, gen)
    base = dict(EXACT_OPTS, include_current_reward=False, importance_weighting="prefix")
    inside = toy.plugin_grad(make(**base, weight_in_clip=True, ratio_clip=1e9), batch)
    outside = toy.plugin_grad(make(**base, weight_in_clip=False), batch)
    close(inside, outside, tol=1e-5)


# =========================================================================================================
# 3. Registry and Params
# =========================================================================================================


def test_registered_as_sequence_divergence():
    cls = load_plugins().divergences.get("minillm")
    assert issubclass(cls, SequenceDivergence)
    assert cls.level == "sequence" and cls.needs_teacher
    div = cls()
    assert div.ppo_epochs == 4 and div.rollouts_per_phase == 256
    p = div.params
    assert (p.gamma, p.ratio_clip, p.reward_scaling, p.reward_clip) == (0.95, 0.2, 0.5, 100.0)
    assert (p.lm_coef, p.kd_ratio, p.single_step_coef) == (1.0, 0.5, 1.0)
    assert p.include_current_reward and p.length_norm and p.whiten_advantages and p.weight_in_clip
    assert p.importance_weighting == "token" and not p.single_step_weighted


@pytest.mark.parametrize(
    "options",
    [
        {"gamma": 1.5},
        {"gamma": -0.1},
        {"ratio_clip": 0.0},
        {"reward_scaling": 0.0},
        {"reward_clip": -1.0},
        {"ppo_epochs": 0},
        {"rollouts_per_phase": 0},
        {"kd_ratio": 1.5},
        {"lm_coef": -1.0},
        {"single_step_coef": -0.5},
        {"long_term_coef": -1.0},
        {"importance_weighting": "sequence"},
        {"gama": 0.9},
    ],
)
def test_params_rejected(options):
    with pytest.raises(ValidationError):
        load_plugins().divergences.get("minillm").from_options(options)


def test_params_accepted():
    div = make(gamma=1.0, reward_clip=None, rollouts_per_phase=None, kd_ratio=0.0, importance_weighting="prefix")
    assert div.params.reward_clip is None and div.rollouts_per_phase is None
    with pytest.raises(ValidationError):
        div.params.gamma = 0.5  # frozen
