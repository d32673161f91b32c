"""The demo's settings: every size, step count and evaluation choice, for the default run and ``--quick``.

Default (at most 15 minutes on a 2-core CPU; 10-12 minutes measured, 2 single-threaded stages at once):

* task: the synthetic world of ``--seed`` with its default sizes (8 genres, 8 modes, 4 allowed per genre, 32
  input symbols, 3-5 items), 50,000 training prompts, 500 validation and 1,000 held-out test prompts;
* teacher: GPT-2 3 layers x 128 hidden x 4 heads (about 615k parameters), SFT for 2,000 steps of 64 at
  lr 2e-3 (cosine): the feasibility run reached validity 0.92 with this (a 4-layer teacher at lr 4e-3 got
  stuck at 0.18: mode membership is learned in a sudden jump, and too large a step misses it);
* student: 2 layers x 24 hidden x 2 heads (about 18k parameters, 34x smaller), SFT for 1,500 steps at
  lr 3e-3: the common initialisation of every distilled student, as in the paper;
* 3 training runs of every student (``train_runs``): the SFT student and each distillation from it, with the
  run's own seeds (initialisation, batch order, sampling), under the one teacher;
* distillation: 1,000 optimizer steps of 64 sequences at lr 3e-3 for *every* method, from that SFT init:

  - KD: word-level forward KL to the teacher on the gold responses, ``kd_ratio`` 1. The reference's KD
    baseline mixes in cross entropy half and half (``kd_ratio`` 0.5), which measured weaker here (validity
    44.6% / coverage 68.3% against 57.6% / 72.9%), so the demo compares with the stronger KD;
  - SeqKD: cross entropy on the teacher's samples (temperature 1);
  - GKD: the student's own samples on half the steps (``lambda`` 0.5), generalized JSD with beta 0.5
    (``lambda`` 1 measured the same: 84.0% / 55.0% against 85.0% / 55.3%);
  - MiniLLM: teacher-mixed sampling with alpha 0.2, rollout phases of 128 sequences, 2 PPO epochs over
    each (so 4 optimizer steps a phase), single-step term weight 1, no pretraining term (``minillm_lm_coef``);

* evaluation: 1,000 test prompts, one response each at temperature 1 (top-k 0, top-p 1, no n-gram blocking:
  the model's own distribution), at most 12 new tokens (a valid response has at most 7); the teacher with each
  of the 3 sampling seeds, each student run with its own one of them, so a student's spread is over training
  runs and sampling together.

``choice_share`` (0 by default) replaces that share of the training records with yes/no choice prompts, and
then every model is also scored for label-word accuracy and ECE on ``eval.choice_prompts`` held-out ones per
seed (:mod:`minillm_demo.calibration`).

``--quick`` (at most 6 minutes) runs the same chain with a fifth of the training prompts, far fewer steps and
prompts, and 2 training runs of 2 sampling seeds each; its numbers are a smoke test, not a result.
Any setting can be changed with ``minillm demo --set KEY=VALUE`` (:mod:`.overrides`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

PROMPT_BUDGET = 16
"""tokens of a prompt in training and evaluation (a prompt is 3 + ``max_items`` words: 8 by default)"""


@dataclass(frozen=True)
class ModelSize:
    layers: int
    hidden: int
    heads: int

    def scratch(self, positions: int = 32) -> dict[str, Any]:
        # dropout 0: the data is fresh samples of a known distribution, and the runs are short
        return {
            "layers": self.layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "max_positions": positions,
            "dropout": 0.0,
        }

    def parameters(self, vocab: int, positions: int = 32) -> int:
        """Parameter count of a GPT-2 of this size (tied embeddings, 4x MLP)."""
        h = self.hidden
        block = 12 * h * h + 13 * h
        return self.layers * block + (vocab + positions) * h + 2 * h


@dataclass(frozen=True)
class TrainStage:
    steps: int
    lr: float
    batch: int = 64
    warmup: int = 0


@dataclass(frozen=True)
class EvalConfig:
    seeds: tuple[int, ...] = (10, 20, 30)
    """sampling seeds: the teacher is evaluated with all of them, training run r of a student with its share
    (:meth:`DemoSettings.run_seeds`)"""
    prompts: int = 1000
    """test prompts per seed (the same prompts for every seed and model)"""
    max_new_tokens: int = 0
    """0: the demo's response budget (:meth:`DemoSettings.response_budget`: 12 in the default world, where a
    valid response has at most 7 tokens; 31 in the varying-length world)"""
    batch_size: int = 250
    references: int = 8
    """responses of the true distribution per prompt, for Rouge-L (maximum over them)"""
    exposure_prompts: int = 500
    exposure_samples: int = 4
    """responses per prompt and side (model, teacher) for ExAccErr: 2,000 a side; the effect is a few % of
    the accumulated KL, so differences under ~5 points are within the spread over seeds"""
    exposure_length: int = 0
    """ExAccErr(l) is reported at this l in the table (the whole curve is in results.json); 0: the shortest valid
    response in tokens (mode, ``min_items`` outputs, EOS: 5 in the default world), which every response reaches"""
    calibration_prompts: int = 1000
    """prompts for next-token ECE, each with one fresh reference of the true distribution per seed"""
    choice_prompts: int = 1000
    """held-out yes/no choice prompts per seed for label-word accuracy and ECE (drawn afresh with each seed,
    labels balanced); measured only when ``choice_share`` > 0 (:mod:`minillm_demo.calibration`)"""


@dataclass(frozen=True)
class DemoSettings:
    mode: str
    seed: int = 0
    train_prompts: int = 50_000
    valid_prompts: int = 500
    test_prompts: int = 1000
    teacher: ModelSize = ModelSize(3, 128, 4)
    student: ModelSize = ModelSize(2, 24, 2)
    teacher_sft: TrainStage = TrainStage(steps=2000, lr=2e-3, warmup=50)
    student_sft: TrainStage = TrainStage(steps=1500, lr=3e-3, warmup=50)
    distill: TrainStage = TrainStage(steps=1000, lr=3e-3, warmup=20)
    kd_ratio: float = 1.0
    gkd_lambda: float = 0.5
    gkd_beta: float = 0.5
    minillm_alpha: float = 0.2
    minillm_rollouts: int = 128
    minillm_ppo_epochs: int = 2
    minillm_single_step_coef: float = 1.0
    gate_prompts: int = 500
    """validation prompts of the teacher check that runs right after the teacher is trained"""
    min_teacher_validity: float = 0.6
    """abort (exit 1) when the teacher's validity on the gate prompts is below this"""
    minillm_lm_coef: float = 0.0
    """weight of MiniLLM's pretraining-corpus term (0: none). The corpus is the training split's prompts and
    responses as plain text (``data/corpus.txt``), mixed as ``(1 - minillm_lm_kd_ratio) LM + ratio KD``"""
    minillm_lm_kd_ratio: float = 0.5
    train_runs: int = 3
    """independent training runs of the student chain (the SFT student and every distillation from it, each
    run with its own seeds) under the one teacher; run ``r`` is evaluated with its own share of ``eval.seeds``"""
    methods: tuple[str, ...] = ("kd", "seqkd", "gkd", "minillm")
    """the distillation methods to run (the teacher and the SFT student always run)"""
    world: dict[str, Any] = field(default_factory=dict)
    """overrides of the synthetic task's :class:`TaskConfig` (e.g. ``{"shared_weight": 0.0}``)"""
    choice_share: float = 0.0
    """share of the ``train_prompts`` training records that are yes/no choice prompts
    (:mod:`minillm_demo.synthetic.choice`; every stage trains on the same mixed split). 0: none, and no
    label-word metrics. The claim-2 run uses 0.2 (see the README's demo section)"""
    choice_question: str = "response"
    """which choice prompts: ``response`` (is this whole response valid for this prompt?,
    :mod:`minillm_demo.synthetic.choice`) or ``fact`` (is this output valid for this symbol in this mode?,
    :mod:`minillm_demo.synthetic.facts`)"""
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.train_runs < 1:
            problems.append(f"train_runs must be at least 1, got {self.train_runs}")
        elif len(self.eval.seeds) % self.train_runs:
            problems.append(
                f"eval.seeds ({len(self.eval.seeds)} seeds) must split evenly over train_runs ({self.train_runs}): "
                "every training run is evaluated with the same number of sampling seeds"
            )
        if not 0.0 <= self.choice_share < 1.0:
            problems.append(f"choice_share must be in [0, 1), got {self.choice_share}")
        from minillm_demo.synthetic.choice import QUESTIONS

        if self.choice_question not in QUESTIONS:
            problems.append(f"choice_question must be one of {', '.join(QUESTIONS)}, got {self.choice_question!r}")
        if self.eval.choice_prompts < 2:
            n = self.eval.choice_prompts
            problems.append(f"eval.choice_prompts must be at least 2 (one of each label), got {n}")
        unknown = [m for m in self.methods if m not in DISTILLED]
        if unknown or len(set(self.methods)) != len(self.methods):
            problems.append(f"methods must be distinct names among {', '.join(DISTILLED)}; got {list(self.methods)}")
        from minillm_demo.synthetic.task import TaskConfig

        try:
            TaskConfig(**self.world)
        except (TypeError, ValueError) as exc:
            problems.append(f"world {self.world}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        """Every setting, with the evaluation's automatic values (0) resolved (:meth:`eval_config`)."""
        return {**asdict(self), "eval": asdict(self.eval_config())}

    def task_config(self) -> Any:
        from minillm_demo.synthetic.task import TaskConfig

        return TaskConfig(**self.world)

    def response_budget(self) -> int:
        """Tokens a response may take in training and generation: the longest valid one (mode, outputs, EOS)
        plus 5 to be wrong in (12 in the default world, 31 in the varying-length one)."""
        from minillm_demo.synthetic.task import response_tokens

        return response_tokens(self.task_config()) + 5

    def positions(self) -> int:
        """Position embeddings of every demo model: 32 when a prompt budget of 16 tokens plus
        :meth:`response_budget` fits (the default world), else that sum rounded up to a multiple of 16."""
        need = PROMPT_BUDGET + self.response_budget()
        return 32 if need <= 32 else -(-need // 16) * 16

    def eval_config(self) -> EvalConfig:
        """``eval`` with its automatic values filled in from the world."""
        from minillm_demo.synthetic.task import response_length_range

        cfg = self.eval
        if cfg.max_new_tokens <= 0:
            cfg = replace(cfg, max_new_tokens=self.response_budget())
        if cfg.exposure_length <= 0:
            cfg = replace(cfg, exposure_length=response_length_range(self.task_config())[0] + 2)
        return cfg

    def run_seeds(self, run: int) -> tuple[int, ...]:
        """The sampling seeds student run ``run`` (0-based) is evaluated with."""
        k = len(self.eval.seeds) // self.train_runs
        return tuple(self.eval.seeds[run * k : (run + 1) * k])


METHODS = ("teacher", "sft", "kd", "seqkd", "gkd", "minillm")
"""Every evaluated model, in report order."""
DISTILLED = ("kd", "seqkd", "gkd", "minillm")
LABELS = {
    "teacher": "Teacher (SFT)",
    "sft": "Student SFT",
    "kd": "KD",
    "seqkd": "SeqKD",
    "gkd": "GKD",
    "minillm": "MiniLLM",
}
RECIPES = {
    "kd": "dataset x fkl",
    "seqkd": "teacher x sft",
    "gkd": "mixed x jsd",
    "minillm": "teacher_mixed x minillm",
}


def default_settings(seed: int = 0) -> DemoSettings:
    return DemoSettings(mode="default", seed=seed)


def quick_settings(seed: int = 0) -> DemoSettings:
    """The same chain, small: a smoke test (CI) that finishes in a few minutes."""
    return DemoSettings(
        mode="quick",
        seed=seed,
        train_prompts=10_000,
        valid_prompts=200,
        test_prompts=200,
        teacher_sft=TrainStage(steps=700, lr=2e-3, warmup=20),
        student_sft=TrainStage(steps=500, lr=3e-3, warmup=10),
        distill=TrainStage(steps=40, lr=3e-3, batch=32, warmup=4),
        minillm_rollouts=64,
        minillm_ppo_epochs=1,
        gate_prompts=200,
        min_teacher_validity=0.2,
        train_runs=2,
        eval=replace(
            EvalConfig(),
            seeds=(10, 20, 30, 40),
            prompts=200,
            exposure_prompts=50,
            exposure_samples=2,
            calibration_prompts=200,
            choice_prompts=200,
        ),
    )


def settings_for(*, quick: bool, seed: int = 0) -> DemoSettings:
    return quick_settings(seed) if quick else default_settings(seed)
