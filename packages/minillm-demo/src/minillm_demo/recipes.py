"""The recipes of the demo's training stages, as plain dicts (written to ``DIR/recipes/ID.yaml``, so any stage
can be re-run by hand with ``minillm distill DIR/recipes/ID.yaml --output-dir ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minillm_demo.config import PROMPT_BUDGET, DemoSettings, TrainStage

MAX_PROMPT = PROMPT_BUDGET
MAX_RESPONSE = 12
"""tokens in the default world: a prompt is 8 words, a valid response at most 7 (mode, 5 items, EOS); room to
be wrong. Another world's budget is :meth:`DemoSettings.response_budget`."""


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


def _generation(max_new_tokens: int = MAX_RESPONSE) -> dict[str, Any]:
    return {"max_new_tokens": max_new_tokens, "temperature": 1.0, "top_k": 0, "top_p": 1.0}


def _scratch(size: Any, tokenizer: Path, positions: int = 32) -> dict[str, Any]:
    return {"family": "synthetic", "scratch": size.scratch(positions), "tokenizer": str(tokenizer)}


def _trained(run: Path) -> dict[str, Any]:
    return {"path": str(run / "final"), "family": "synthetic"}


def stage(name: str, run: int = 0) -> str:
    """The id of a stage: ``teacher``, or ``runN/NAME`` for student run ``run`` (0-based; ``N = run + 1``).
    It names the stage's recipe (``recipes/ID.yaml``), run folder (``runs/ID``), evaluation and log."""
    return "teacher" if name == "teacher" else f"run{run + 1}/{name}"


def pretraining_corpus(data: Path) -> Path:
    """``data/corpus.txt``: the training split's prompts and responses as plain text, one document each (the
    corpus of MiniLLM's pretraining term when ``minillm_lm_coef > 0``)."""
    return data / "corpus.txt"


def write_pretraining_corpus(data: Path) -> Path:
    out = pretraining_corpus(data)
    with (data / "train.jsonl").open(encoding="utf-8") as rows, out.open("w", encoding="utf-8") as handle:
        for line in rows:
            row = json.loads(line)
            handle.write(f"{row['instruction']} {row['response']}\n\n")
    return out


def build_recipes(settings: DemoSettings, data: Path, tokenizer: Path, runs: Path) -> dict[str, dict[str, Any]]:
    """stage id (:func:`stage`) -> recipe dict: the teacher, then for every training run the SFT student and
    the distilled students of ``settings.methods`` (each from that run's SFT student's ``final/``, with the
    same number of optimizer steps and batch size)."""
    s = settings
    budget, positions = s.response_budget(), s.positions()
    data_spec = {
        "train": str(data / "train.jsonl"),
        "max_prompt_length": MAX_PROMPT,
        "max_response_length": budget,
    }
    teacher_run = runs / "teacher"

    def recipe(name: str, run: int, seed_offset: int, **sections: Any) -> dict[str, Any]:
        return {
            "name": f"demo-{name}" + (f"-run{run + 1}" if name != "teacher" else ""),
            "description": f"minillm demo ({s.mode}): {name}" + (f", run {run + 1}" if name != "teacher" else ""),
            "seed": s.seed * 1000 + 10 * run + seed_offset,
            "data": sections.pop("data", data_spec),
            "engine": {"zero_stage": 0, "dtype": "fp32"},
            **sections,
        }

    distill = _train(s.distill)
    out = {
        "teacher": recipe(
            "teacher",
            0,
            1,
            student=_scratch(s.teacher, tokenizer, positions),
            sampler={"name": "dataset"},
            divergence={"name": "sft"},
            train=_train(s.teacher_sft),
        )
    }
    for run in range(s.train_runs):
        sft_run = runs / stage("sft", run)
        common = {"teacher": _trained(teacher_run), "student": _trained(sft_run)}
        minillm_divergence: dict[str, Any] = {
            "name": "minillm",
            "ppo_epochs": s.minillm_ppo_epochs,
            "rollouts_per_phase": s.minillm_rollouts,
            "single_step_coef": s.minillm_single_step_coef,
            "lm_coef": s.minillm_lm_coef,
            "kd_ratio": s.minillm_lm_kd_ratio,
        }
        minillm_data = data_spec
        if s.minillm_lm_coef > 0:
            minillm_data = {**data_spec, "pretrain": {"path": str(pretraining_corpus(data)), "block_size": MAX_PROMPT}}
        stages = {
            "sft": recipe(
                "sft",
                run,
                2,
                student=_scratch(s.student, tokenizer, positions),
                sampler={"name": "dataset"},
                divergence={"name": "sft"},
                train=_train(s.student_sft),
            ),
            "kd": recipe(
                "kd",
                run,
                3,
                **common,
                sampler={"name": "dataset"},
                divergence={"name": "fkl"},
                train={**distill, "kd_ratio": s.kd_ratio},
            ),
            "seqkd": recipe(
                "seqkd",
                run,
                4,
                **common,
                sampler={"name": "teacher", **_generation(budget)},
                divergence={"name": "sft"},
                train=distill,
            ),
            "gkd": recipe(
                "gkd",
                run,
                5,
                **common,
                sampler={"name": "mixed", "lambda": s.gkd_lambda, **_generation(budget)},
                divergence={"name": "jsd", "beta": s.gkd_beta},
                train=distill,
            ),
            "minillm": recipe(
                "minillm",
                run,
                6,
                **common,
                data=minillm_data,
                sampler={"name": "teacher_mixed", "alpha": s.minillm_alpha, **_generation(budget)},
                divergence=minillm_divergence,
                train=distill,
            ),
        }
        for name in ("sft", *s.methods):
            out[stage(name, run)] = stages[name]
    return out
