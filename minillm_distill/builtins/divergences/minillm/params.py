"""Recipe options of the ``minillm`` divergence. Defaults follow the reference implementation
(microsoft/LMOps ``minillm/``, GPT-2 scripts); each field says where that differs from the paper."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from minillm_distill.api import PhaseParams


class MiniLLMParams(PhaseParams):
    # --- rollout phase (PhaseParams' fields, with the reference's defaults) -----------------------------------
    ppo_epochs: int = Field(4, ge=1, description="passes over each rollout buffer (reference 4)")
    rollouts_per_phase: int | None = Field(
        256, ge=1, description="sequences sampled per rollout phase across all ranks (None: one step's worth)"
    )

    # --- rewards and returns (long-term term) ---------------------------------------------------------------
    gamma: float = Field(0.95, ge=0, le=1, description="discount of the return; the paper has none (1.0)")
    reward_scaling: float = Field(0.5, gt=0, description="r_t = (log p - log q_old) / reward_scaling")
    reward_clip: float | None = Field(
        100.0, gt=0, description="r_t clipped to [-reward_clip, reward_clip] after scaling (None: no clipping)"
    )
    include_current_reward: bool = Field(
        True,
        description="True (reference): the advantage of token t is G_t, which includes r_t. False (paper): "
        "R_{t+1}, the return from t+1 on, because the single-step term already covers step t",
    )
    length_norm: bool = Field(True, description="divide each return by the number of rewards it sums")
    whiten_advantages: bool = Field(
        True, description="standardise advantages over the valid tokens of the whole phase, across ranks"
    )

    # --- importance weights and PPO clipping ----------------------------------------------------------------
    ratio_clip: float = Field(0.2, gt=0, description="PPO clip epsilon of the ratio")
    weight_in_clip: bool = Field(
        True,
        description="True (reference): rho_t = q_theta/q_old * w_t is clipped as a whole. False: only "
        "q_theta/q_old is clipped and w_t multiplies the clipped objective",
    )
    importance_weighting: Literal["token", "prefix"] = Field(
        "token",
        description="token (paper and reference): the per-token approximation w_t. prefix: exact "
        "per-decision weights (products of w over the prefix), unbiased but high-variance",
    )

    long_term_coef: float = Field(
        1.0,
        ge=0,
        description="weight of the long-term (policy-gradient) term; 0 with single_step_coef > 0 is the "
        "single-step-only ablation (the exact per-token reverse KL on the rollouts, no returns)",
    )

    # --- single-step term -----------------------------------------------------------------------------------
    single_step_coef: float = Field(1.0, ge=0, description="weight of sum_t KL(q_theta(.|y<t) || p(.|y<t))")
    single_step_weighted: bool = Field(
        False, description="multiply the single-step KL of token t by w_t (the paper's form; reference: no)"
    )

    # --- pretraining-corpus term ----------------------------------------------------------------------------
    lm_coef: float = Field(1.0, ge=0, description="weight of the pretraining-corpus loss")
    kd_ratio: float = Field(
        0.5, ge=0, le=1, description="pretraining loss = (1 - kd_ratio) * LM + kd_ratio * word-level KD"
    )

    @model_validator(mode="after")
    def _something_to_learn(self) -> MiniLLMParams:
        if self.long_term_coef == 0 and self.single_step_coef == 0:
            raise ValueError(
                "long_term_coef and single_step_coef are both 0: the reverse-KL objective has no term left "
                "(set one of them above 0)"
            )
        return self
