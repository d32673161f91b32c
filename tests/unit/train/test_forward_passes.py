"""Forward passes per training step, counted with hooks, for every shipped tiny recipe: nothing beyond the
minimum. One student decode per sampled micro-batch when the student samples (none for metrics), one teacher
pass over each rollout token (its decode, or one scoring forward when it did not decode), one student forward
with grad per micro-batch and PPO epoch (plus the pretraining-corpus term's own blocks)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from minillm_distill.recipe.loader import load_recipe
from minillm_distill.train import loop, setup

pytestmark = pytest.mark.slow

RECIPES = sorted(p.stem for p in (ROOT / "recipes" / "tiny").glob("*.yaml"))
STEPS = {"minillm": 4}  # one rollout phase (2 micro-batches x 2 PPO epochs); others: 3 steps


def _counting_load_model(events: list[tuple[str, str]], real, student_seed: int):
    def load(spec, seed=0):
        loaded = real(spec, seed=seed)
        role = "student" if seed == student_seed else "teacher"  # loop: the teacher's seed is the recipe's + 1
        loaded.model.register_forward_pre_hook(lambda m, a, kw: events.append((role, _kind(kw))), with_kwargs=True)
        return loaded

    return load


def _kind(kwargs) -> str:
    if kwargs.get("use_cache"):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        empty = cache is None or cache.get_seq_length() == 0
        return "decode-start" if empty else "decode-step"
    if "attention_mask" not in kwargs:
        return "block-grad" if torch.is_grad_enabled() else "block"
    return "score-grad" if torch.is_grad_enabled() else "score"


@pytest.mark.parametrize("name", RECIPES)
def test_no_forward_pass_beyond_the_minimum(tmp_path, monkeypatch, name):
    recipe = load_recipe(ROOT / "recipes" / "tiny" / f"{name}.yaml", [f"train.total_steps={STEPS.get(name, 3)}"])
    events: list[tuple[str, str]] = []
    per_step: list[Counter] = []
    monkeypatch.setattr(setup, "load_model", _counting_load_model(events, setup.load_model, recipe.seed))
    real_step = loop.train_step

    def counted(ctx, step):
        events.clear()
        row = real_step(ctx, step)
        per_step.append(Counter(events))
        return row

    monkeypatch.setattr(loop, "train_step", counted)
    loop.run_distill(recipe, loop.RunOptions(output_dir=Path(tmp_path / "run")))
    assert len(per_step) == recipe.train.total_steps
    gas = recipe.train.grad_accum
    sampler = recipe.sampler.name if recipe.sampler is not None else "dataset"
    div = recipe.divergence.name
    student_samples = sampler in ("student", "mixed", "teacher_mixed")
    teacher_decodes = sampler in ("teacher", "teacher_mixed")
    needs_teacher = div not in ("sft",)
    for step, c in enumerate(per_step):
        # one student forward with grad per micro-batch (per PPO epoch for minillm: one micro-batch per step)
        assert c[("student", "score-grad")] == gas, (step, c)
        assert c[("student", "score")] == 0 and c[("student", "block")] == 0, (step, c)
        if sampler == "teacher_mixed":
            n_micro = math.ceil(recipe.divergence.options["rollouts_per_phase"] / recipe.train.micro_batch_size)
            decodes = n_micro if step == 0 else 0  # the phase's rollouts, once (no student-length probe)
        elif sampler == "mixed":
            from minillm_distill.builtins.samplers.mixed import on_policy_decision

            decodes = gas if on_policy_decision(recipe.seed, step, recipe.sampler.options["lambda"]) else 0
        else:
            decodes = gas if sampler in ("student", "teacher") else 0
        assert c[("student", "decode-start")] == (decodes if student_samples else 0), (step, c)
        assert c[("teacher", "decode-start")] == (decodes if teacher_decodes else 0), (step, c)
        # the teacher scores rollout tokens only when it did not decode them
        expected_teacher_scores = 0 if teacher_decodes or not needs_teacher else gas
        assert c[("teacher", "score")] == expected_teacher_scores, (step, c)
        assert c[("teacher", "score-grad")] == 0, (step, c)
        if div == "minillm":  # the pretraining term's blocks (other tokens): one student, one teacher pass
            assert c[("student", "block-grad")] == gas and c[("teacher", "block")] == gas, (step, c)
        else:
            assert c[("student", "block-grad")] == 0 and c[("teacher", "block")] == 0, (step, c)
