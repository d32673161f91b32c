"""The recipes of the demo's six training runs, as plain dicts (written to ``DIR/recipes/NAME.yaml``, so any
stage can be re-run by hand with ``minillm distill DIR/recipes/NAME.yaml --output-dir ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm_cli.demo.config import DemoSettings, TrainStage

MAX_PROMPT = 16
MAX_RESPONSE = 12
"""tokens: a prompt is 8 words, a valid response at most 7 (mode, 5 items, EOS); room to be wrong"""


def _train(stage: TrainStage) -> dict[str, Any]:
    return {
        "total_steps": stage.steps,
        "lr": stage.lr,
        "schedule": "cosine",
        "warmup_steps": stage.warmup,
        "micro_batch_size": stage.batch,
        "grad_accum": 1,
        "clip_grad": 1.0,
        "save_every": stage.steps,
        "keep_last": 1,
    }


def _generation() -> dict[str, Any]:
    return {"max_new_tokens": MAX_RESPONSE, "temperature": 1.0, "top_k": 0, "top_p": 1.0}


def _scratch(size: Any, tokenizer: Path) -> dict[str, Any]:
    return {"family": "synthetic", "scratch": size.scratch(), "tokenizer": str(tokenizer)}


def _trained(run: Path) -> dict[str, Any]:
    return {"path": str(run / "final"), "family": "synthetic"}


def build_recipes(settings: DemoSettings, data: Path, tokenizer: Path, runs: Path) -> dict[str, dict[str, Any]]:
    """name -> recipe dict, for ``teacher``, ``sft`` and the four distilled students (every distillation starts
    from the SFT student's ``final/`` and uses the same number of optimizer steps and batch size)."""
    s = settings
    data_spec = {
        "train": str(data / "train.jsonl"),
        "max_prompt_length": MAX_PROMPT,
        "max_response_length": MAX_RESPONSE,
    }
    teacher_run, sft_run = runs / "teacher", runs / "sft"

    def recipe(name: str, seed_offset: int, **sections: Any) -> dict[str, Any]:
        return {
            "name": f"demo-{name}",
            "description": f"minillm demo ({s.mode}): {name}",
            "seed": s.seed * 1000 + seed_offset,
            "data": data_spec,
            "engine": {"zero_stage": 0, "dtype": "fp32"},
            **sections,
        }

    distill = _train(s.distill)
    return {
        "teacher": recipe(
            "teacher",
            1,
            student=_scratch(s.teacher, tokenizer),
            sampler={"name": "dataset"},
            divergence={"name": "sft"},
            train=_train(s.teacher_sft),
        ),
        "sft": recipe(
            "sft",
            2,
            student=_scratch(s.student, tokenizer),
            sampler={"name": "dataset"},
            divergence={"name": "sft"},
            train=_train(s.student_sft),
        ),
        "kd": recipe(
            "kd",
            3,
            teacher=_trained(teacher_run),
            student=_trained(sft_run),
            sampler={"name": "dataset"},
            divergence={"name": "fkl"},
            train={**distill, "kd_ratio": s.kd_ratio},
        ),
        "seqkd": recipe(
            "seqkd",
            4,
            teacher=_trained(teacher_run),
            student=_trained(sft_run),
            sampler={"name": "teacher", **_generation()},
            divergence={"name": "sft"},
            train=distill,
        ),
        "gkd": recipe(
            "gkd",
            5,
            teacher=_trained(teacher_run),
            student=_trained(sft_run),
            sampler={"name": "mixed", "lambda": s.gkd_lambda, **_generation()},
            divergence={"name": "jsd", "beta": s.gkd_beta},
            train=distill,
        ),
        "minillm": recipe(
            "minillm",
            6,
            teacher=_trained(teacher_run),
            student=_trained(sft_run),
            sampler={"name": "teacher_mixed", "alpha": s.minillm_alpha, **_generation()},
            divergence={
                "name": "minillm",
                "ppo_epochs": s.minillm_ppo_epochs,
                "rollouts_per_phase": s.minillm_rollouts,
                "single_step_coef": s.minillm_single_step_coef,
            },
            train=distill,
        ),
    }
