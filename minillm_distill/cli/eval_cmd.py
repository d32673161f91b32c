"""``minillm eval``: Rouge-L and exact match of one or more models on a benchmark, as the MiniLLM paper
evaluates (sampling at temperature 1 with several seeds; see :mod:`minillm_distill.eval.runner`).

Failures and their exit codes (no traceback without ``--debug``):

* unknown benchmark (the available ones are listed, with the closest name): 2 (usage);
* bad ``--seeds`` / ``--device``, a ``--data`` file in the wrong format (the file, line and field are named),
  nothing left to evaluate after ``--limit``, a teacher with another tokenizer: 2 (usage);
* a model path or ``--data`` path that does not exist, a hub model or dataset that cannot be loaded (offline):
  5 (resource).
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import typer

from minillm_distill.errors import RecipeError, UsageError

DEFAULT_OUTPUT_DIR = Path("runs/eval")


def parse_seeds(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        seeds = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--seeds {text!r} is not a comma-separated list of integers", hint="e.g. --seeds 10,20,30,40,50"
        ) from None
    if not seeds:
        raise UsageError("--seeds is empty", hint="e.g. --seeds 10,20,30,40,50")
    if any(s < 0 or s > 2**32 - 1 for s in seeds):
        raise UsageError(f"--seeds {text!r}: seeds must be between 0 and {2**32 - 1}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r} repeats a seed")
    return seeds


def _load(path: str, device: Any) -> Any:
    from transformers.utils import logging as hf_logging

    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    hf_logging.disable_progress_bar()  # the eval has its own progress bar
    loaded = load_model(ModelSpec(path=path))
    loaded.model.to(device)
    loaded.model.eval()
    return loaded


def eval_command(
    bench: str = typer.Option(..., "--bench", "-b", help="Benchmark: dolly, self_inst, vicuna, sni, unni, ..."),
    models: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="Model folder or hub id; repeat for several models side by side. PATH=LABEL names it in the table "
        "(default: the run name, or the folder's name).",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Local benchmark file or folder in the benchmark's format (default: download it)."
    ),
    seeds: str = typer.Option("10,20,30,40,50", "--seeds", help="Sampling seeds, comma-separated."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest response, in tokens."),
    max_prompt_tokens: int = typer.Option(
        256, "--max-prompt-tokens", min=1, help="Prompts are cut to their last N tokens."
    ),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Evaluate only the first N examples."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts decoded together."),
    output_dir: Path = typer.Option(
        DEFAULT_OUTPUT_DIR, "--output-dir", "-o", help="Results go to DIR/BENCH/ (predictions.jsonl, scores.json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON instead of a table."),
    teacher: str | None = typer.Option(
        None, "--teacher", help="Also measure exposure bias (ExAccErr) of each model against this teacher."
    ),
    exposure_samples: int = typer.Option(
        10, "--exposure-samples", min=1, help="Responses sampled per prompt and side for ExAccErr."
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda, cuda:N."),
    prompt_format: str | None = typer.Option(
        None,
        "--prompt-format",
        help="family, chat (the tokenizer's chat template), plain, or a format string with {instruction} and "
        "{input} (default: what the model was trained with, from its prompt_format.json; else family).",
    ),
) -> None:
    """Evaluate models on a benchmark: Rouge-L and exact match (mean ± std over seeds), mean length."""
    from rich.console import Console

    from minillm_distill.benchmark import EmptyBenchmarkError
    from minillm_distill.cli.output_paths import check_output_dir
    from minillm_distill.data.prompt_format import cli_formatter, resolve_prompt_format
    from minillm_distill.eval import report
    from minillm_distill.eval.runner import EvalSettings, evaluate_model
    from minillm_distill.models import check_model_source
    from minillm_distill.plugins import resolve_benchmark

    check_output_dir(output_dir, "--output-dir/-o")
    benchmark = resolve_benchmark(bench)
    benchmark.check_scorers()  # a missing scorer is found now, not after generation
    from minillm_distill.eval.labels import split_model_arg

    models, explicit_labels = map(list, zip(*(split_model_arg(m) for m in models), strict=True))
    settings = EvalSettings(
        seeds=parse_seeds(seeds),
        max_new_tokens=max_new_tokens,
        max_prompt_tokens=max_prompt_tokens,
        batch_size=batch_size,
    )
    from minillm_distill.cli.device import resolve_device

    torch_device = resolve_device(device)
    from minillm_distill.gguf import local_source
    from minillm_distill.models import stderr_note

    named = list(models)  # labels come from the paths given; a GGUF file loads from its converted folder
    for path in models:
        check_model_source(path)
    models = [local_source(path, log=stderr_note) for path in models]
    for path in models:
        resolve_prompt_format(prompt_format, path)  # a bad --prompt-format or prompt_format.json: before loading
    if teacher is not None:
        check_model_source(teacher, "teacher")
        teacher = local_source(teacher, log=stderr_note)

    examples = benchmark.load_examples(data)
    total = len(examples)
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise EmptyBenchmarkError(
            f"benchmark {bench!r} has no example to evaluate"
            + (f" after --limit {limit} ({total} loaded)" if limit is not None else ""),
            hint="use --limit 1 or more" if limit == 0 else None,
        )

    err = Console(stderr=True, highlight=False)
    labels = report.model_labels(named, explicit_labels)
    teacher_loaded = _load(teacher, torch_device) if teacher is not None else None
    all_scores = []
    for path, name, label in zip(models, named, labels, strict=True):
        if not as_json:
            err.print(f"[bold]{label}[/]: {len(examples)} examples x {len(settings.seeds)} seeds on {torch_device}")
        loaded = _load(path, torch_device)
        if teacher_loaded is not None:
            _check_same_tokenizer(teacher_loaded, loaded, teacher, path)
        prompts = cli_formatter(prompt_format, path, loaded.family, loaded.tokenizer)
        with _progress(err, len(examples) * len(settings.seeds), enabled=not as_json) as advance:
            scores, predictions = evaluate_model(
                loaded.model,
                loaded.tokenizer,
                prompts,
                benchmark,
                examples,
                settings,
                model_name=name,
                label=label,
                teacher=teacher_loaded.model if teacher_loaded is not None else None,
                exposure_samples=exposure_samples,
                progress=advance,
            )
        scores.settings["prompt_format"] = prompts.setting
        if "exposure_bias" in scores.extra:
            scores.extra["exposure_bias"] = {"teacher": teacher, **scores.extra["exposure_bias"]}
        directory = report.result_dir(output_dir, benchmark.name, label, len(models))
        report.write_model_outputs(directory, scores, predictions)
        all_scores.append(scores)
        del loaded
        _free_memory()
    if len(models) > 1:
        report.write_comparison(output_dir, benchmark.name, all_scores)

    where = output_dir / benchmark.name
    if as_json:
        payload = {"benchmark": benchmark.name, "output_dir": str(where), "models": [s.as_dict() for s in all_scores]}
        typer.echo(json.dumps(report.json_safe(payload), indent=2, ensure_ascii=False))
    else:
        out = Console(highlight=False)
        out.print(report.scores_table(benchmark.name, all_scores))
        out.print(f"predictions and scores in {where}/")


def _check_same_tokenizer(teacher: Any, student: Any, teacher_path: str, student_path: str) -> None:
    from minillm_distill.models import check_vocab

    try:
        check_vocab(teacher, student)
    except RecipeError as exc:
        raise UsageError(
            f"--teacher {teacher_path} and --model {student_path} do not share a tokenizer",
            details=exc.details,
            why="ExAccErr compares the two models' next-token distributions over the same token ids",
            hint="measure exposure bias against a teacher of the model's family (same tokenizer)",
        ) from exc


class _progress:
    """A Rich progress bar on stderr (nothing when disabled); yields the ``advance(n)`` callback."""

    def __init__(self, console: Any, total: int, *, enabled: bool) -> None:
        self.console, self.total, self.enabled = console, total, enabled
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("generate", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
