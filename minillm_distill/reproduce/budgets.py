"""How much work ``minillm reproduce`` does: ``quick`` (the test suite's end-to-end check, numbers meaningless),
``cpu`` (about an hour on a 2-core CPU), ``gpu`` (the paper's scale: the whole training split, 500 test prompts,
5 sampling seeds).

The ``cpu`` figures were chosen from measurements of SmolLM2-135M-Instruct and an 11-block cut of it on a 2-core
AMD EPYC (float32, 2 threads): a student SFT step of 8 x 192 tokens about 7 s, a teacher forward of the same
batch 3.5 s, sampling 135 (teacher) and 220 (student) tokens/s at batch 32. Settings are fixed before any test
number is seen; nothing here is tuned toward the paper's figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from minillm_distill.errors import UsageError

BENCHMARKS = ("dolly", "self_inst", "vicuna", "sni")


@dataclass(frozen=True)
class Budget:
    name: str
    cut_ends: tuple[int, int] = (5, 6)
    """the student keeps the teacher's first and last blocks (5 and 6 of SmolLM2's 30: of three 11-block cuts
    this one had the lowest validation cross entropy before training, ``scripts/settle_cut.py``)"""
    every: int | None = None
    """instead: every ``every``-th block of the teacher (and the last one)"""
    max_prompt: int = 128
    max_response: int = 64
    sft_steps: int = 100
    sft_lr: float = 2e-4
    """validation cross entropy of the cut student after 20 SFT steps of 8: 6.34 at 2e-4 against 7.20 at 5e-5
    (``scripts/settle_cut.py``)"""
    distill_steps: int = 40
    distill_lr: float = 5e-5
    batch: int = 8
    warmup: int = 5
    minillm_rollouts: int = 32
    minillm_ppo_epochs: int = 2
    gkd_lambda: float = 0.5
    gkd_beta: float = 0.5
    kd_ratio: float = 0.5
    eval_limits: dict[str, int | None] = field(
        default_factory=lambda: {"dolly": 100, "self_inst": 30, "vicuna": 30, "sni": 30}
    )
    eval_seeds: tuple[int, ...] = (10, 20)
    eval_max_new_tokens: int = 64
    eval_batch: int = 32
    exposure_prompts: int = 0
    """ExAccErr of each student against the teacher on this many Dolly test prompts (0: not measured; the cpu
    budget cannot afford it: 10 free-run responses per prompt and side)"""
    exposure_samples: int = 10
    threads: int = 2
    lanes: int = 1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["eval_seeds"] = list(self.eval_seeds)
        out["cut_ends"] = list(self.cut_ends)
        return out


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        name="quick",
        cut_ends=(1, 1),
        max_prompt=48,
        max_response=8,
        sft_steps=2,
        distill_steps=2,
        batch=2,
        warmup=0,
        minillm_rollouts=2,
        minillm_ppo_epochs=1,
        eval_limits={"dolly": 3, "self_inst": 2, "vicuna": 2, "sni": 2},
        eval_seeds=(10,),
        eval_max_new_tokens=8,
        eval_batch=4,
        exposure_prompts=2,
        exposure_samples=2,
    ),
    "cpu": Budget(name="cpu"),
    "gpu": Budget(
        name="gpu",
        max_prompt=256,
        max_response=256,
        sft_steps=3000,
        distill_steps=2000,
        batch=32,
        warmup=100,
        sft_lr=1e-5,
        distill_lr=5e-6,
        minillm_rollouts=256,
        minillm_ppo_epochs=4,
        eval_limits={"dolly": None, "self_inst": None, "vicuna": None, "sni": None},
        eval_seeds=(10, 20, 30, 40, 50),
        eval_max_new_tokens=256,
        eval_batch=64,
        exposure_prompts=100,
        threads=8,
    ),
}


def budget(name: str, **changes: Any) -> Budget:
    if name not in BUDGETS:
        raise UsageError(f"no budget named {name!r}", hint=f"use one of {', '.join(BUDGETS)}")
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(BUDGETS[name], **changes)
