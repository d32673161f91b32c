"""``minillm``: the reverse-KL policy-gradient divergence of MiniLLM (Gu et al., 2023, arXiv 2306.08543, §2).

Notation: prompt x, response y = y_1..y_T, student q_theta, teacher p, per-token log-ratio
log p(y_t|y<t,x) - log q(y_t|y<t,x). The equations below are those of the paper's §2, by name.

* Objective (§2.1): L(theta) = KL[q_theta || p] = -E_{y~q_theta} log p(y|x) / q_theta(y|x), the *sequence*-level
  reverse KL.
* Policy gradient (§2.2, policy-gradient theorem):
  grad L = -E_{y~q} sum_t (R_t - 1) grad log q(y_t|y<t,x), with R_t = sum_{t'>=t} log p(y_t')/q(y_t').
* Single-step decomposition (§2.2): grad L = (grad L)_Single + (grad L)_Long with
  (grad L)_Single = E_{y~q} sum_t grad KL(q_theta(.|y<t,x) || p(.|y<t,x))  (exact over the vocabulary, the
  prefix held fixed) and (grad L)_Long = -E_{y~q} sum_t R_{t+1} grad log q(y_t|y<t,x).
* Teacher-mixed sampling (§2.2): y ~ p~ = alpha p + (1 - alpha) q, corrected with importance weights
  w_t = prod_{t'<=t} q(y_t')/p~(y_t'), which the paper approximates by the single token's q(y_t)/p~(y_t).
* Length normalisation (§2.2): R^Norm_{t+1} = 1/(T - t - 1) sum_{t'=t+1}^{T} log p(y_t')/q(y_t').
* Training (§2.3): the long-term term is optimised with PPO's ratio clipping over ``ppo_epochs`` passes of
  each rollout buffer, plus a language-modelling loss L_PT on a pretraining corpus.

What this plugin computes, and which of the above each part implements:

* :meth:`MiniLLM.prepare` (once per rollout phase): rewards r_t = clip((log p(y_t) - log q_old(y_t)) /
  reward_scaling, +-reward_clip) from the log-probs the sampler gathered (the paper's per-token log-ratio);
  returns with discount ``gamma``: G_t = sum_{t'>=t} gamma^(t'-t) r_t' (``include_current_reward``, the
  reference) or R_{t+1} = G_{t+1} (the paper's (grad L)_Long); the length normalisation divides each return by
  the number of rewards it sums (R^Norm); optional whitening of the advantages over every valid token of the
  phase on every rank.
* :meth:`MiniLLM.loss` (per micro-batch, per PPO epoch): ``long_term_coef`` times the long-term term as a
  PPO-clipped importance-weighted surrogate, loss_t = max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)) with
  rho_t = q_theta(y_t)/q_old(y_t) * w_t (teacher-mixed (grad L)_Long); plus ``single_step_coef`` *
  sum_t KL(q_theta(.|y<t) || p(.|y<t)) exact over the vocabulary with the teacher detached ((grad L)_Single).
  Sums over valid tokens divided by the optimizer step's global token count (``norm.tokens``).
* :meth:`MiniLLM.pretrain_loss`: lm_coef * ((1 - kd_ratio) * cross entropy + kd_ratio * forward KL(p || q)) on
  a pretraining-corpus block (L_PT; the KD part follows the reference).

Defaults follow the reference implementation (microsoft/LMOps ``minillm/``, GPT-2 scripts), not the paper:

* ``gamma = 0.95`` (paper: undiscounted), ``reward_scaling = 0.5`` and ``reward_clip = 100`` (paper: neither).
* ``include_current_reward = True``: the reference's advantage of token t includes r_t. With the single-step
  term on, that counts step t twice: in expectation the estimate is grad L + E_q sum_t grad KL(q_t || p_t)
  (prefix fixed). The paper's decomposition is ``include_current_reward = False``.
* ``whiten_advantages = True`` (paper: none). Here the mean and population variance are taken over the valid
  tokens of the whole phase across ranks; the reference whitens each micro-batch's [B, T] tensor, padding
  included.
* ``weight_in_clip = True``: as in the reference, w_t sits inside the clipped ratio, so with alpha > 0 a token
  whose weight is outside [1 - eps, 1 + eps] can be clipped already in the first PPO epoch, before the policy
  has moved (a bias: its gradient is dropped whenever A_t would push rho further out of the interval).
  ``False`` clips only the policy ratio q_theta/q_old (the trust region proper) and multiplies the clipped
  objective by w_t.
* ``importance_weighting = "token"``: the paper's (and reference's) per-token approximation. ``"prefix"`` uses
  per-decision weights instead (the long-term term's reward r_t' weighted by prod_{s<=t'} w_s, the single-step
  term of token t by prod_{s<t} w_s), which is exact but high-variance for long responses.
* ``single_step_weighted = False``: the reference leaves w_t out of the single-step term; the paper's formula
  has it. The single-step KL does not depend on y_t, so a per-token w_t only adds variance (E_{y_t~p~}[w_t] = 1).
* ``kd_ratio = 0.5`` (reference scripts; the paper's L_PT is plain language modelling), ``lm_coef = 1``,
  ``ppo_epochs = 4``, ``rollouts_per_phase = 256``, ``ratio_clip = 0.2``, ``length_norm = True`` (reference
  values; the paper does not say otherwise).

Exactness: with gamma = 1, reward_scaling = 1, no reward clipping, no length normalisation, no whitening and
q_old = q_theta (the first PPO epoch), ``include_current_reward = False`` with ``single_step_coef = 1`` makes the
gradient of the step's loss an unbiased estimate of (sequences / ``norm.tokens``) * grad L; with alpha > 0 this
needs ``importance_weighting = "prefix"`` and a ratio clip that cannot bind (``weight_in_clip = False``).
``include_current_reward = True`` with ``single_step_coef = 0`` (plain REINFORCE) is unbiased too.
``tests/unit/builtins/test_minillm_divergence.py`` checks all of these by enumerating a toy model.

The vocabulary rows compared are those both models share (``[:min(V_s, V_t)]``), the rows the samplers draw
from and normalise behaviour log-probs over.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from minillm_distill.api import PluginParams, Reducer, ResponseScores, RolloutBatch, SequenceDivergence, StepNorm
from minillm_distill.builtins.divergences.minillm.params import MiniLLMParams
from minillm_distill.builtins.divergences.minillm.policy import clipped_policy_loss, token_terms
from minillm_distill.builtins.divergences.minillm.pretrain import pretrain_terms
from minillm_distill.builtins.divergences.minillm.returns import (
    discounted_returns,
    length_normalise,
    masked_moments,
    prefix_weighted_returns,
    prefix_weights_before,
    token_rewards,
    whiten,
)
from minillm_distill.builtins.divergences.minillm.stats import phase_metrics, phase_sums

__all__ = ["MiniLLM", "MiniLLMParams"]


class MiniLLM(SequenceDivergence):
    name = "minillm"
    description = "MiniLLM: reverse-KL policy gradient (PPO-clipped, importance-weighted) + exact single-step KL"
    needs_teacher_logprobs = True  # the reward log p(y_t) comes from the teacher's decode
    Params: ClassVar[type[PluginParams]] = MiniLLMParams

    params: MiniLLMParams

    # ----------------------------------------------------------------------------------------- rollout phase

    def _weights(self, batch: RolloutBatch, mask: torch.Tensor) -> torch.Tensor:
        ref = batch.behaviour_logprobs
        if batch.importance_weights is None:
            return torch.ones_like(ref, dtype=torch.float32)
        w = batch.importance_weights.float()
        return torch.where(mask, w, torch.ones_like(w))

    def prepare(self, batches: list[Any], reduce: Reducer) -> tuple[list[dict[str, torch.Tensor]], dict[str, float]]:
        """Advantages, importance weights and single-step weights per micro-batch, and the phase metrics."""
        p = self.params
        prefix = p.importance_weighting == "prefix"
        advantages, masks, prepared = [], [], []
        device = batches[0].response_ids.device if batches else torch.device("cpu")
        sums = torch.zeros(6, dtype=torch.float64, device=device)
        w_min, w_max = float("inf"), float("-inf")
        for b in batches:
            if b.behaviour_logprobs is None or b.teacher_logprobs is None:
                raise ValueError(
                    "the minillm divergence needs behaviour and teacher log-probs from the sampler "
                    "(use `teacher_mixed`; alpha 0 samples from the student alone)"
                )
            mask = b.response_mask.bool()
            w = self._weights(b, mask)
            rewards = token_rewards(
                b.teacher_logprobs, b.behaviour_logprobs, mask, scaling=p.reward_scaling, clip=p.reward_clip
            )
            ss_weights = torch.ones_like(w)
            if prefix:
                # rho_t carries w_t; the advantage carries the rest of the per-decision weight, W_t' / w_t, and
                # the single-step term the prefix's weight W_{t-1}: both computed without dividing by w_t
                adv = prefix_weighted_returns(rewards, w, mask, gamma=p.gamma, include_current=p.include_current_reward)
                ss_weights = prefix_weights_before(w, mask)
            else:
                adv = discounted_returns(rewards, mask, gamma=p.gamma, include_current=p.include_current_reward)
            if p.length_norm:
                adv = length_normalise(adv, mask, include_current=p.include_current_reward)
            if p.single_step_weighted:
                ss_weights = ss_weights * w
            advantages.append(torch.where(mask, adv, torch.zeros_like(adv)))
            masks.append(mask)
            prepared.append({"weights": w, "single_step_weights": torch.where(mask, ss_weights, torch.zeros_like(w))})
            local, lo, hi = phase_sums(
                rewards=rewards,
                log_ratio=torch.where(mask, b.teacher_logprobs.float() - b.behaviour_logprobs.float(), 0.0),
                weights=w,
                mask=mask,
                gamma=p.gamma,
                length_norm=p.length_norm,
            )
            sums += local.to(device)
            w_min, w_max = min(w_min, lo), max(w_max, hi)
        if p.whiten_advantages:
            advantages, adv_mean, adv_std = whiten(advantages, masks, reduce)
        else:
            s, s2, n = reduce.sum(masked_moments(advantages, masks)).tolist()
            adv_mean = s / n if n > 0 else 0.0
            adv_std = max(s2 / n - adv_mean**2, 0.0) ** 0.5 if n > 0 else 0.0
        for item, adv in zip(prepared, advantages, strict=True):
            item["advantages"] = adv.detach()
        return prepared, phase_metrics(sums, w_min, w_max, adv_mean, adv_std, reduce)

    # ------------------------------------------------------------------------------------------- micro-batch

    def loss(
        self,
        student: ResponseScores,
        teacher: ResponseScores | None,
        batch: Any,
        prepared: dict[str, torch.Tensor],
        norm: StepNorm,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.params
        with_kl = p.single_step_coef > 0
        if with_kl and teacher is None:
            raise ValueError("the minillm single-step term needs the teacher's scores")
        if batch.behaviour_logprobs is None:
            raise ValueError("the minillm divergence needs the rollout's behaviour log-probs")
        mask = batch.response_mask.bool()
        idx, logq, kl = token_terms(student, teacher, batch.response_ids, mask, with_kl=with_kl)

        def valid(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1).index_select(0, idx).float()

        weights = valid(prepared["weights"])
        pg_tok, clipped, ratio = clipped_policy_loss(
            logq,
            valid(batch.behaviour_logprobs),
            weights,
            valid(prepared["advantages"]),
            clip=p.ratio_clip,
            weight_in_clip=p.weight_in_clip,
        )
        denom = norm.tokens
        pg = pg_tok.sum() / denom
        single = (valid(prepared["single_step_weights"]) * kl).sum() / denom
        total = p.long_term_coef * pg + p.single_step_coef * single if with_kl else p.long_term_coef * pg
        with torch.no_grad():
            log_ratio = ratio.clamp(min=1e-30).log()
            metrics = {
                "pg_loss": pg.detach(),
                "single_step_loss": single.detach(),
                "clip_fraction": clipped.float().sum() / denom,
                # k3 estimate of KL(q_old || q_theta) at the sampled tokens (importance-weighted): policy drift
                "policy_kl": (weights * (torch.expm1(log_ratio) - log_ratio)).sum() / denom,
            }
        return total, metrics

    def pretrain_loss(
        self,
        student: ResponseScores,
        teacher: ResponseScores | None,
        targets: torch.Tensor,
        mask: torch.Tensor,
        norm_tokens: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return pretrain_terms(
            student,
            teacher,
            targets,
            mask,
            norm_tokens,
            lm_coef=self.params.lm_coef,
            kd_ratio=self.params.kd_ratio,
        )
