"""Run folders for tests without training: ``make_run`` writes a run directory with stage-0 checkpoints of a
tiny student (what ``minillm export`` and resume read), ``FakeEngine`` stands in for a DeepSpeed engine when
checkpoints are written."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_models import TINY_SCRATCH

from minillm_distill.models import load_model
from minillm_distill.recipe.schema import ModelSpec
from minillm_distill.recipe.yaml_io import dump_yaml


def scratch_student(family: str) -> dict:
    return {"family": family, "tokenizer": "byte", "scratch": dict(TINY_SCRATCH)}


def make_run(
    root: Path, student: dict, *, steps: tuple[int, ...] = (3,), dtype: str = "fp32", seed: int = 5
) -> tuple[Path, torch.nn.Module]:
    """A run directory with stage-0 checkpoints of a student (random weights, seed ``seed``)."""
    run = root / "run"
    recipe = {
        "name": "fake-kd",
        "seed": 1,
        "teacher": scratch_student("gpt2"),
        "student": student,
        "sampler": {"name": "dataset"},
        "divergence": {"name": "fkl", "temperature": 1.0},
        "train": {"total_steps": max(steps)},
        "engine": {"zero_stage": 0, "dtype": dtype},
    }
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(dump_yaml(recipe), encoding="utf-8")
    model = load_model(ModelSpec.model_validate(student), seed=seed).model
    with torch.no_grad():  # a path student: make the checkpoint differ from the weights at `path`
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    for step in steps:
        ck = run / "checkpoints" / f"step-{step}"
        (ck / "engine").mkdir(parents=True)
        torch.save({"module": model.state_dict(), "ds_version": "test"}, ck / "engine" / "mp_rank_00_model_states.pt")
        (ck / "state.json").write_text(json.dumps({"step": step, "recipe": "fake-kd"}), encoding="utf-8")
    (run / "checkpoints" / "latest").write_text(f"step-{max(steps)}\n", encoding="utf-8")
    rows = [{"step": s, "loss": 1.0 / s, "lr": 1e-3} for s in range(1, max(steps) + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run, model


class FakeEngine:
    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.loaded: str | None = None

    def save_checkpoint(self, save_dir: str, tag: str, save_latest: bool = True) -> None:
        d = Path(save_dir, tag)
        d.mkdir(parents=True)
        (d / "model.pt").write_text("weights")
        if self.fail_at is not None and Path(save_dir).name.endswith(f"step-{self.fail_at}"):
            raise KeyboardInterrupt("killed while writing")  # stands in for SIGKILL mid-write
        (d / "optim.pt").write_text("optimizer")

    def load_checkpoint(self, load_dir: str, tag: str, **kwargs):
        self.loaded = str(Path(load_dir, tag))
        return self.loaded, {}
