"""The recipes of the pipeline's training stages, as plain dicts written to ``OUT/recipes/NAME.yaml`` (so any stage
can be rerun by hand: ``minillm distill OUT/recipes/kd.yaml --output-dir OUT/runs/kd``).

As in the paper, every distilled student starts from the same SFT student, with the same optimizer steps,
batch size and learning rate; prompts are written with the teacher's chat template (``prompt_format: chat``).

* SFT: ``dataset x sft`` on the training split, from the cut student;
* KD (word-level): ``dataset x fkl`` with ``train.kd_ratio`` of the divergence and the rest cross entropy, as
  MiniLLM's KD baseline mixes them;
* SeqKD: ``teacher x sft`` (the teacher writes every response, sampled at temperature 1);
* GKD: ``mixed x jsd`` (on-policy with probability lambda, generalized JSD beta);
* MiniLLM: ``teacher_mixed x minillm`` (alpha 0.2; the single-step term, length normalisation, discount 0.95,
  reward scaling 0.5 and PPO clip 0.2 at the plugin's reference defaults; the pretraining term off: the
  budgets have no pretraining corpus).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm_distill.reproduce.budgets import Budget

METHODS = ("sft", "kd", "seqkd", "gkd", "minillm")
DISTILLED = ("kd", "seqkd", "gkd", "minillm")
SEED_OFFSET = {"sft": 1, "kd": 2, "seqkd": 3, "gkd": 4, "minillm": 5}


def _generation(budget: Budget) -> dict[str, Any]:
    return {"max_new_tokens": budget.max_response, "temperature": 1.0, "top_k": 0, "top_p": 1.0}


def _train(budget: Budget, steps: int, lr: float, **extra: Any) -> dict[str, Any]:
    return {
        "total_steps": steps,
        "lr": lr,
        "schedule": "cosine",
        "warmup_steps": min(budget.warmup, steps),
        "micro_batch_size": budget.batch,
        "grad_accum": 1,
        "clip_grad": 1.0,
        "save_every": max(1, steps // 4),
        "keep_last": 1,
        "log_every": 1,
        **extra,
    }


def build_recipes(
    budget: Budget,
    *,
    seed: int,
    train_file: Path,
    teacher: dict[str, Any],
    cut_student: Path,
    cut_blocks: list[int] | None,
    runs: Path,
) -> dict[str, dict[str, Any]]:
    """method -> recipe dict. ``teacher``: the teacher's model section (a GGUF path with its sha256, or a
    folder); ``cut_student``: the student before training, made of the teacher's blocks ``cut_blocks``; ``runs``:
    where the stages' run folders are."""
    data = {
        "train": str(train_file),
        "max_prompt_length": budget.max_prompt,
        "max_response_length": budget.max_response,
        "prompt_format": "chat",
    }
    engine = {"zero_stage": 0, "dtype": "fp32"}

    def recipe(method: str, **sections: Any) -> dict[str, Any]:
        origin = "the SFT student" if method != "sft" else f"the teacher's blocks {cut_blocks or '(see models/cut)'}"
        return {
            "name": f"reproduce-{method}",
            "description": f"minillm reproduce ({budget.name} budget): {method}, student from {origin}",
            "seed": seed * 100 + SEED_OFFSET[method],
            "data": data,
            "engine": engine,
            **sections,
        }

    sft_student = {"path": str(runs / "sft" / "final")}
    distill = _train(budget, budget.distill_steps, budget.distill_lr)
    return {
        "sft": recipe(
            "sft",
            student={"path": str(cut_student)},
            sampler={"name": "dataset"},
            divergence={"name": "sft"},
            train=_train(budget, budget.sft_steps, budget.sft_lr),
        ),
        "kd": recipe(
            "kd",
            teacher=teacher,
            student=sft_student,
            sampler={"name": "dataset"},
            divergence={"name": "fkl"},
            train={**distill, "kd_ratio": budget.kd_ratio},
        ),
        "seqkd": recipe(
            "seqkd",
            teacher=teacher,
            student=sft_student,
            sampler={"name": "teacher", **_generation(budget)},
            divergence={"name": "sft"},
            train=distill,
        ),
        "gkd": recipe(
            "gkd",
            teacher=teacher,
            student=sft_student,
            sampler={"name": "mixed", "lambda": budget.gkd_lambda, **_generation(budget)},
            divergence={"name": "jsd", "beta": budget.gkd_beta},
            train=distill,
        ),
        "minillm": recipe(
            "minillm",
            teacher=teacher,
            student=sft_student,
            sampler={"name": "teacher_mixed", "alpha": 0.2, **_generation(budget)},
            divergence={
                "name": "minillm",
                "ppo_epochs": budget.minillm_ppo_epochs,
                "rollouts_per_phase": budget.minillm_rollouts,
                "lm_coef": 0.0,
            },
            train=distill,
        ),
    }
