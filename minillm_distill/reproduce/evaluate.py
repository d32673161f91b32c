"""One model's evaluation on every benchmark of the pipeline, in one process (the model loads once):
``python -m minillm_distill.reproduce.evaluate JOB.json``.

For each benchmark it runs what ``minillm eval`` runs (sampling at temperature 1, no-repeat-ngram 6, Rouge-L over
the seeds), writes ``DIR/BENCH/predictions.jsonl`` and ``scores.json`` like ``minillm eval --output-dir DIR``,
and finally ``summary`` (the JSON file the pipeline reads: Rouge-L mean and std over seeds per benchmark). A line
is appended to ``progress`` for every generated response, so the pipeline can draw a progress bar.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EvalJob:
    model: str
    label: str
    out: str
    """folder of the per-benchmark outputs"""
    summary: str
    progress: str
    benchmarks: dict[str, str]
    """benchmark name -> local data file or folder"""
    limits: dict[str, int | None]
    seeds: list[int]
    max_new_tokens: int
    max_prompt_tokens: int
    batch_size: int
    prompt_format: str | None = None
    """how prompts are written (default: the model folder's prompt_format.json, else the family's template)"""
    teacher: str | None = None
    """measure exposure bias (ExAccErr) against this model, on the first Dolly prompts"""
    exposure_prompts: int = 0
    exposure_samples: int = 10
    extra: dict[str, Any] = field(default_factory=dict)


def write_job(job: EvalJob, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(job), indent=2) + "\n", encoding="utf-8")
    return path


def units(job: EvalJob, sizes: dict[str, int]) -> int:
    """Progress lines the job writes: responses over every benchmark and seed."""
    return sum(sizes[name] for name in job.benchmarks) * len(job.seeds)


def run(job: EvalJob) -> dict[str, Any]:
    import torch
    from transformers.utils import logging as hf_logging

    from minillm_distill.data.prompt_format import PromptFormatter, read_prompt_format
    from minillm_distill.eval import report
    from minillm_distill.eval.runner import EvalSettings, evaluate_model
    from minillm_distill.models import load_model
    from minillm_distill.plugins import resolve_benchmark
    from minillm_distill.recipe.schema import ModelSpec

    hf_logging.disable_progress_bar()
    loaded = load_model(ModelSpec(path=job.model), dtype=torch.float32)
    measure = job.teacher is not None and job.exposure_prompts > 0
    teacher = load_model(ModelSpec(path=job.teacher), dtype=torch.float32).model if measure else None
    from minillm_distill.models import spec_source

    folder = spec_source(ModelSpec(path=job.model))
    setting = job.prompt_format or read_prompt_format(folder) or "family"
    prompts = PromptFormatter(setting, loaded.family, loaded.tokenizer)
    settings = EvalSettings(
        seeds=tuple(job.seeds),
        max_new_tokens=job.max_new_tokens,
        max_prompt_tokens=job.max_prompt_tokens,
        batch_size=job.batch_size,
    )
    progress_file = Path(job.progress)
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    progress_file.write_text("", encoding="utf-8")

    def advance(n: int) -> None:
        with progress_file.open("a", encoding="utf-8") as handle:
            handle.write("\n" * n)

    summary: dict[str, Any] = {"model": job.model, "label": job.label, "benchmarks": {}}
    for name, data in job.benchmarks.items():
        benchmark = resolve_benchmark(name)
        examples = benchmark.load_examples(data)
        limit = job.limits.get(name)
        if limit is not None:
            examples = examples[:limit]
        scores, predictions = evaluate_model(
            loaded.model,
            loaded.tokenizer,
            prompts,
            benchmark,
            examples,
            settings,
            model_name=job.model,
            label=job.label,
            progress=advance,
        )
        scores.settings["prompt_format"] = prompts.setting
        report.write_model_outputs(Path(job.out) / name, scores, predictions)
        entry = {
            "n": scores.n,
            "rougeL": scores.rouge_l,
            "rougeL_std": scores.rouge_l_std,
            "rougeL_per_seed": [scores.per_seed[s]["rougeL"] for s in settings.seeds],
            "mean_length": scores.mean_length,
        }
        if teacher is not None and name == "dolly":
            entry["exposure_bias"] = exposure_bias(job, loaded, teacher, prompts, benchmark, examples)
        summary["benchmarks"][name] = entry
    report.atomic_write(Path(job.summary), json.dumps(report.json_safe(summary), indent=2) + "\n")
    return summary


def exposure_bias(job: EvalJob, loaded: Any, teacher: Any, prompts: Any, benchmark: Any, examples: list) -> dict:
    """ExAccErr of the model against the teacher on the first ``exposure_prompts`` prompts (free-run responses
    of both, ``exposure_samples`` per prompt and side, the first seed), as ``minillm eval --teacher`` measures."""
    from minillm_distill.eval.analysis import measure_exposure_bias

    texts = [benchmark.format_prompt(example, prompts) for example in examples[: job.exposure_prompts]]
    curve = measure_exposure_bias(
        loaded.model,
        teacher,
        loaded.tokenizer,
        texts,
        samples_per_prompt=job.exposure_samples,
        max_new_tokens=job.max_new_tokens,
        max_prompt_tokens=job.max_prompt_tokens,
        batch_size=job.batch_size,
        seed=job.seeds[0],
    )
    final = next((v for v in reversed(curve.exaccerr) if v is not None), None)
    return {"prompts": len(texts), "samples_per_prompt": job.exposure_samples, "final": final, **curve.as_dict()}


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m minillm_distill.reproduce.evaluate JOB.json")
    job = EvalJob(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    run(job)


if __name__ == "__main__":
    from minillm_distill.host_memory import use_huge_pages

    use_huge_pages()
    main(sys.argv[1:])
