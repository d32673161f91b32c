"""Evaluation of one demo model on the synthetic task's held-out prompts, per sampling seed.

For every seed each test prompt gets one response sampled at temperature 1 (top-k 0, top-p 1, no n-gram
blocking) with the eval's per-example generators (:func:`minillm_distill.api.generate_predictions`, so a
response depends only on the model, the prompt, the seed and the prompt's position). Per seed:

* ``validity``, ``coverage``, ``mode_coverage``, ``true_nll``, ``finished``, ``error_*``: the exact checker
  (:meth:`SyntheticBenchmark.task_metrics`);
* ``rouge_l``: Rouge-L F (x100) against ``references`` responses of the true distribution (maximum);
* ``mean_length``: words before EOS;
* ``ece`` and ``token_accuracy``: next-token calibration under teacher forcing
  (:func:`minillm_distill.api.token_calibration`) on one fresh reference of the true distribution per
  prompt and seed, EOS included (so the seeds differ in the references, not only in the samples);
* ``label_accuracy`` and ``label_ece``: label-word accuracy and ECE on ``choice_prompts`` held-out yes/no
  choice prompts drawn afresh with the seed (:mod:`minillm_demo.calibration`), when the data folder's
  training split holds choice prompts (``choice.json``), else None; the reliability bins go to the result
  file's ``label_bins`` (one list per seed);
* ``pair_accuracy`` and ``pair_ece``: accuracy and ECE of the two-way choice between a valid and a hybrid
  output inside a true response (:mod:`minillm_demo.synthetic.pairs`), one per calibration prompt, drawn
  afresh with the seed; reliability bins in the result file's ``pair_bins``;
* ``exposure_bias``: ExAccErr(l) in % against the teacher (:func:`minillm_distill.api.measure_exposure_bias`)
  with that seed's generator, at ``l = exposure_length``; the teacher itself has none (``None``);
* by reference length (:mod:`minillm_demo.lengths`): ``share@B``, ``validity@B`` and ``rouge_l@B`` per
  bucket ``B`` of the first reference's length in output symbols, and ``exaccerr@L`` for every generation
  length ``L`` up to ``max_new_tokens`` (None where no response of both sides is that long; the teacher: none).
  ExAccErr at ``L`` averages over the responses (of the model and of the teacher) at least ``L`` tokens long.

``python -m minillm_demo.evaluate JOB.json`` runs one evaluation as its own process (the demo runs two at
once); it writes the result JSON and appends one progress line per finished unit to the job's progress file.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from minillm_demo.config import EvalConfig

METRICS = (
    "validity",
    "coverage",
    "mode_coverage",
    "rouge_l",
    "mean_length",
    "true_nll",
    "exposure_bias",
    "ece",
    "token_accuracy",
    "label_accuracy",
    "label_ece",
    "pair_accuracy",
    "pair_ece",
    "finished",
    "error_hybrid",
)
"""Every metric of results.json, per seed."""


@dataclass
class EvalJob:
    name: str
    model: str
    data: str
    out: str
    teacher: str | None = None
    """None when ``model`` is the teacher (no exposure bias)."""
    progress: str | None = None
    threads: int = 1
    eval: dict[str, Any] | None = None

    def config(self) -> EvalConfig:
        cfg = dict(self.eval or {})
        if "seeds" in cfg:
            cfg["seeds"] = tuple(cfg["seeds"])
        return EvalConfig(**cfg)


def units(cfg: EvalConfig, with_teacher: bool) -> int:
    """Progress units of one evaluation: generation, calibration (and exposure bias) per seed."""
    return len(cfg.seeds) * (3 if with_teacher else 2)


def load(path: str) -> Any:
    """A saved demo model (``synthetic`` family: the bare instruction is the prompt), in eval mode."""
    from minillm_distill.api import ModelSpec, load_model

    return load_model(ModelSpec(path=str(path), family="synthetic"))


def held_out_examples(data_dir: str | Path, cfg: EvalConfig) -> tuple[Any, list[Any]]:
    """(benchmark, the first ``cfg.prompts`` test examples) from the demo's data folder."""
    from minillm_demo.synthetic.benchmark import SyntheticBenchmark
    from minillm_distill.api import ResourceError

    bench = SyntheticBenchmark(n_references=cfg.references, max_new_tokens=cfg.max_new_tokens)
    examples = bench.load_examples(str(Path(data_dir) / "test.jsonl"))
    if len(examples) < cfg.prompts:
        raise ResourceError(f"{data_dir}/test.jsonl has {len(examples)} prompts, the evaluation needs {cfg.prompts}")
    return bench, examples[: cfg.prompts]


def evaluate_model(
    model_dir: str | Path,
    data_dir: str | Path,
    cfg: EvalConfig,
    *,
    teacher_dir: str | Path | None = None,
    tick: Callable[[str], None] | None = None,
    label_bins: list[Any] | None = None,
    pair_bins: list[Any] | None = None,
) -> dict[str, list[float | None]]:
    """Per-seed values of every metric in :data:`METRICS` (lists in the order of ``cfg.seeds``); each seed's
    label-word reliability bins are appended to ``label_bins`` when given (None for a seed without them), its
    pair-choice bins to ``pair_bins``."""
    from minillm_demo.calibration import evaluate_choices, evaluate_pairs
    from minillm_demo.lengths import bucket_scores, curve_scores, output_count
    from minillm_demo.synthetic.checker import Checker
    from minillm_demo.synthetic.choice import read_choice_spec
    from minillm_demo.synthetic.task import EOS, length_buckets, response_tokens
    from minillm_distill.api import (
        EvalSettings,
        generate_predictions,
        measure_exposure_bias,
        rouge_l,
        token_calibration,
    )

    tick = tick or (lambda _: None)
    bench, examples = held_out_examples(data_dir, cfg)
    world = bench.world
    if cfg.max_new_tokens <= 0:  # the demo resolves it; a hand-written job may not
        cfg = replace(cfg, max_new_tokens=response_tokens(world.config) + 5)
    if cfg.exposure_length <= 0:
        cfg = replace(cfg, exposure_length=world.config.min_items + 2)
    buckets = length_buckets(world.config)
    checker = Checker(world)
    loaded = load(str(model_dir))
    teacher = load(str(teacher_dir)).model if teacher_dir is not None else None
    model, tokenizer, family = loaded.model, loaded.tokenizer, loaded.family
    prompts = [bench.format_prompt(example, family) for example in examples]
    choice_spec = read_choice_spec(data_dir)
    question = (choice_spec or {}).get("question", "response")  # a spec from before fact questions
    out: dict[str, list[float | None]] = {name: [] for name in METRICS}
    for seed in cfg.seeds:
        settings = EvalSettings(
            seeds=(seed,),
            max_new_tokens=cfg.max_new_tokens,
            max_prompt_tokens=64,
            batch_size=cfg.batch_size,
            no_repeat_ngram_size=0,
        )
        predictions = generate_predictions(model, tokenizer, prompts, examples, settings)
        task = bench.task_metrics(
            [p.example.instruction for p in predictions],
            [p.prediction for p in predictions],
            [p.length < cfg.max_new_tokens for p in predictions],
        )
        rouges = [rouge_l(p.prediction, p.example.references) for p in predictions]
        for name in ("validity", "coverage", "mode_coverage", "mean_length", "true_nll", "finished", "error_hybrid"):
            out[name].append(task[name])
        out["rouge_l"].append(_mean(rouges))
        valid = [
            checker.is_valid(p.example.instruction, p.prediction, eos=p.length < cfg.max_new_tokens)
            for p in predictions
        ]
        lengths = [output_count(p.example.references[0]) for p in predictions]
        _append(out, bucket_scores(buckets, lengths, valid, rouges))
        tick(f"seed {seed}: generated")

        n_cal = min(cfg.calibration_prompts, len(examples))
        references = [
            f"{world.references(e.instruction, 1, seed=seed)[0]} {EOS}" for e in examples[:n_cal]
        ]  # one fresh sample of the true distribution per prompt and seed, EOS included
        calibration = token_calibration(
            model,
            tokenizer,
            prompts[:n_cal],
            references,
            max_prompt_tokens=64,
            max_reference_tokens=max(16, cfg.max_new_tokens),
        )
        out["ece"].append(calibration.ece)
        out["token_accuracy"].append(calibration.accuracy)
        labels = evaluate_choices(model, tokenizer, world, cfg.choice_prompts, seed, question) if choice_spec else None
        out["label_accuracy"].append(labels.accuracy if labels else None)
        out["label_ece"].append(labels.ece if labels else None)
        if label_bins is not None:
            label_bins.append(labels.bins if labels else None)
        pairs = evaluate_pairs(
            model, tokenizer, world, prompts[:n_cal], [e.instruction for e in examples[:n_cal]], seed
        )
        out["pair_accuracy"].append(pairs.accuracy)
        out["pair_ece"].append(pairs.ece)
        if pair_bins is not None:
            pair_bins.append(pairs.bins)
        tick(f"seed {seed}: calibration")

        if teacher is None:
            out["exposure_bias"].append(None)
            _append(out, curve_scores([], [], cfg.max_new_tokens))
        else:
            curve = measure_exposure_bias(
                model,
                teacher,
                tokenizer,
                prompts[: cfg.exposure_prompts],
                samples_per_prompt=cfg.exposure_samples,
                max_new_tokens=cfg.max_new_tokens,
                max_prompt_tokens=64,
                batch_size=cfg.batch_size,
                seed=seed,
            )
            out["exposure_bias"].append(curve.at(cfg.exposure_length))
            _append(out, curve_scores(curve.lengths, curve.exaccerr, cfg.max_new_tokens))
            tick(f"seed {seed}: exposure bias")
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _append(out: dict[str, list[float | None]], values: dict[str, float | None]) -> None:
    for name, value in values.items():
        out.setdefault(name, []).append(value)


def true_distribution(data_dir: str | Path, cfg: EvalConfig) -> dict[str, list[float | None]]:
    """The task metrics of responses drawn from the true distribution for the same prompts and seeds (a
    perfect model): what coverage and Rouge-L can reach with this many samples."""
    from minillm_demo.lengths import bucket_scores, output_count
    from minillm_demo.synthetic.metrics import evaluate
    from minillm_demo.synthetic.task import length_buckets
    from minillm_distill.api import rouge_l

    bench, examples = held_out_examples(data_dir, cfg)
    world = bench.world
    out: dict[str, list[float | None]] = {name: [] for name in METRICS}
    for done, seed in enumerate(cfg.seeds):
        rng = random.Random(f"demo-true-distribution|{seed}")
        parsed = [world.parse_prompt(e.instruction) for e in examples]
        responses = [world.response_text(world.sample_response(p, rng)) for p in parsed]
        task = evaluate(world, parsed, responses, eos=True)
        for name in ("validity", "coverage", "mode_coverage", "mean_length", "true_nll", "finished", "error_hybrid"):
            out[name].append(task[name])
        rouges = [rouge_l(r, e.references) for r, e in zip(responses, examples, strict=True)]
        out["rouge_l"].append(_mean(rouges))
        lengths = [output_count(e.references[0]) for e in examples]
        _append(out, bucket_scores(length_buckets(world.config), lengths, [True] * len(responses), rouges))
        for values in out.values():  # what needs a model (calibration, exposure bias): not measured here
            values.extend([None] * (done + 1 - len(values)))
    return out


def teacher_gate(
    teacher_dir: str | Path, data_dir: str | Path, prompts: int, *, seed: int = 1, max_new_tokens: int = 12
) -> float:
    """Validity of the teacher on ``prompts`` validation prompts (one sample each, temperature 1)."""
    from minillm_demo.synthetic.benchmark import SyntheticBenchmark
    from minillm_distill.api import EvalSettings, generate_predictions

    bench = SyntheticBenchmark(n_references=1, max_new_tokens=max_new_tokens)
    examples = bench.load_examples(str(Path(data_dir) / "valid.jsonl"))[:prompts]
    loaded = load(str(teacher_dir))
    texts = [bench.format_prompt(e, loaded.family) for e in examples]
    settings = EvalSettings(
        seeds=(seed,), max_new_tokens=max_new_tokens, max_prompt_tokens=64, batch_size=250, no_repeat_ngram_size=0
    )
    predictions = generate_predictions(loaded.model, loaded.tokenizer, texts, examples, settings)
    task = bench.task_metrics(
        [p.example.instruction for p in predictions],
        [p.prediction for p in predictions],
        [p.length < settings.max_new_tokens for p in predictions],
    )
    return float(task["validity"])


# -- running as a job ----------------------------------------------------------------------------------------
def run_job(job: EvalJob) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, job.threads))
    progress = Path(job.progress) if job.progress else None
    start = time.perf_counter()

    def tick(what: str) -> None:
        if progress is not None:
            with progress.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"done": what, "elapsed_s": time.perf_counter() - start}) + "\n")

    bins: list[Any] = []
    pair_bins: list[Any] = []
    values = evaluate_model(
        job.model, job.data, job.config(), teacher_dir=job.teacher, tick=tick, label_bins=bins, pair_bins=pair_bins
    )
    result = {
        "name": job.name,
        "model": job.model,
        "per_seed": values,
        "label_bins": bins,
        "pair_bins": pair_bins,
        "wall_s": time.perf_counter() - start,
    }
    out = Path(job.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    return result


def write_job(job: EvalJob, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(job), indent=2) + "\n", encoding="utf-8")
    return path
