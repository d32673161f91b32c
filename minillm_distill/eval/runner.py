"""Generate on a benchmark the way the MiniLLM paper evaluates, and score.

For every seed (default 10, 20, 30, 40, 50) every prompt gets one sampled response: temperature 1, top-k 0,
top-p 1 (plain sampling), ``no_repeat_ngram_size`` 6, up to 256 new tokens, prompts cut to their last 256
tokens; batched with a KV cache (:func:`minillm_distill.generation.decode`). Example ``i`` (its position in the
benchmark) under seed ``s`` draws its tokens from its own CPU ``torch.Generator`` (seeded from a hash of
``(s, i)``: :func:`example_seed`), so a prediction depends only on the model, the prompt, the seed and ``i``:
not on ``--batch-size``, on the other examples of its batch, on ``--limit`` or on the other seeds.

Scores per seed are means over examples (Rouge-L and exact match x100, maximum over references; response
length in tokens, EOS not counted); the reported value is their mean over seeds, with the sample standard
deviation over seeds as the spread.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from minillm_distill.benchmark import Benchmark, EvalExample
from minillm_distill.eval import metrics
from minillm_distill.eval.prompts import encode_prompt, left_pad, prompt_budget
from minillm_distill.generation import GenerationParams, decode
from minillm_distill.model_facts import eos_token_ids, model_device, pad_token_id

DEFAULT_SEEDS = (10, 20, 30, 40, 50)


@dataclass(frozen=True)
class EvalSettings:
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    max_new_tokens: int = 256
    max_prompt_tokens: int = 256
    batch_size: int = 8
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    no_repeat_ngram_size: int = 6
    max_new_tokens_setting: str = "--max-new-tokens"
    """Where ``max_new_tokens`` came from, for error messages (``eval.max_new_tokens`` during training)."""

    def generation_params(self) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        del out["max_new_tokens_setting"]  # where a value came from, not a setting of the evaluation
        return out


@dataclass
class Prediction:
    example: EvalExample
    seed: int
    prompt: str
    prediction: str
    length: int
    """response tokens, EOS not counted"""
    rouge_l: float = 0.0
    exact_match: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.example.id,
            "seed": self.seed,
            "prompt": self.prompt,
            "prediction": self.prediction,
            "references": list(self.example.references),
            "length": self.length,
            "rougeL": self.rouge_l,
            "exact_match": self.exact_match,
        }
        if self.example.metadata:
            out["metadata"] = dict(self.example.metadata)
        return out


@dataclass
class ModelScores:
    """What ``scores.json`` holds for one model."""

    benchmark: str
    model: str
    label: str
    n: int
    seeds: list[int]
    rouge_l: float
    rouge_l_std: float
    exact_match: float
    exact_match_std: float
    mean_length: float
    mean_length_std: float
    per_seed: dict[int, dict[str, float]]
    rouge_l_by_reference_length: dict[str, dict[str, float]]
    settings: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    """``calibration``, ``exposure_bias``: present when measured."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "model": self.model,
            "label": self.label,
            "n": self.n,
            "seeds": self.seeds,
            "rougeL": self.rouge_l,
            "rougeL_std": self.rouge_l_std,
            "exact_match": self.exact_match,
            "exact_match_std": self.exact_match_std,
            "mean_length": self.mean_length,
            "mean_length_std": self.mean_length_std,
            "per_seed": {str(seed): values for seed, values in self.per_seed.items()},
            "rougeL_by_reference_length": self.rouge_l_by_reference_length,
            "settings": self.settings,
            **self.extra,
        }


def example_seed(seed: int, index: int) -> int:
    """The generator seed of example ``index`` under evaluation seed ``seed``: the first 4 bytes of
    SHA-256(``"seed:index"``) (the CPU generator keeps only 32 bits of a seed)."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def per_row_choose(generators: Sequence[torch.Generator]) -> Callable[[Any, Any], torch.Tensor]:
    """A ``choose`` for :func:`decode` that draws row ``i``'s token from ``generators[i]`` (from the processed
    model distribution) and returns it as a one-hot distribution, which ``decode`` then draws exactly."""

    def choose(q: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        probs = q if q is not None else p
        assert probs is not None
        rows = probs.float().cpu()
        picks = torch.cat([torch.multinomial(rows[i], 1, generator=g) for i, g in enumerate(generators)])
        one_hot = torch.zeros_like(probs)
        one_hot[torch.arange(len(generators), device=probs.device), picks.to(probs.device)] = 1.0
        return one_hot

    return choose


def _strip_eos(ids: list[int], eos: Sequence[int]) -> list[int]:
    while ids and ids[-1] in eos:
        ids = ids[:-1]
    return ids


@torch.no_grad()
def generate_predictions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    examples: Sequence[EvalExample],
    settings: EvalSettings,
    *,
    progress: Callable[[int], None] | None = None,
    indices: Sequence[int] | None = None,
) -> list[Prediction]:
    """One prediction per (seed, example), seeds in the order given, examples in order. ``indices``: each
    example's position in the benchmark (default 0, 1, ...), which seeds its generator."""
    indices = list(range(len(examples))) if indices is None else list(indices)
    device = model_device(model)
    params = settings.generation_params()
    eos = eos_token_ids(tokenizer, model)
    pad = pad_token_id(tokenizer, eos)
    budget = prompt_budget(
        model, settings.max_prompt_tokens, settings.max_new_tokens, setting=settings.max_new_tokens_setting
    )
    encoded = [encode_prompt(tokenizer, text, budget) for text in prompts]
    vocab = len(tokenizer)
    predictions: list[Prediction] = []
    for seed in settings.seeds:
        for start in range(0, len(encoded), settings.batch_size):
            ids, mask = left_pad(encoded[start : start + settings.batch_size], pad)
            generators = [
                torch.Generator().manual_seed(example_seed(seed, indices[start + row])) for row in range(ids.shape[0])
            ]
            out = decode(
                ids.to(device),
                mask.to(device),
                student=model,
                params=params,
                choose=per_row_choose(generators),
                eos_token_id=eos,
                pad_token_id=pad,
                vocab_size=vocab,
            )
            response_ids, response_mask = out.response_ids.cpu(), out.response_mask.cpu()
            for row in range(ids.shape[0]):
                kept = response_ids[row][response_mask[row].bool()].tolist()
                tokens = _strip_eos(kept, eos)
                index = start + row
                predictions.append(
                    Prediction(
                        example=examples[index],
                        seed=seed,
                        prompt=prompts[index],
                        prediction=tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                        length=len(tokens),
                    )
                )
            if progress is not None:
                progress(ids.shape[0])
    return predictions


def score_predictions(
    predictions: Sequence[Prediction],
    settings: EvalSettings,
    *,
    benchmark: str,
    model: str,
    label: str,
    n: int,
    buckets: Sequence[tuple[int, int | None]] = metrics.LENGTH_BUCKETS,
) -> ModelScores:
    """Fill each prediction's Rouge-L and exact match, and aggregate per seed and over seeds."""
    by_seed: dict[int, list[Prediction]] = defaultdict(list)
    for pred in predictions:
        refs = pred.example.references
        pred.rouge_l = metrics.rouge_l(pred.prediction, refs)
        pred.exact_match = metrics.exact_match(pred.prediction, refs)
        by_seed[pred.seed].append(pred)
    per_seed: dict[int, dict[str, float]] = {}
    in_bucket: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    bucket_sizes: dict[str, int] = defaultdict(int)
    for seed in settings.seeds:
        preds = by_seed.get(seed, [])
        per_seed[seed] = {
            "rougeL": metrics.mean(p.rouge_l for p in preds),
            "exact_match": metrics.mean(p.exact_match for p in preds),
            "mean_length": metrics.mean(p.length for p in preds),
        }
        for pred in preds:
            name = metrics.bucket_of(metrics.reference_length(pred.example.references), buckets)
            if name is not None:
                in_bucket[name][seed].append(pred.rouge_l)
                if seed == settings.seeds[0]:
                    bucket_sizes[name] += 1
    by_length = {}
    for bucket in buckets:
        name = metrics.bucket_name(bucket)
        seed_means = [metrics.mean(values) for values in in_bucket[name].values() if values]
        by_length[name] = {
            "n": bucket_sizes[name],
            "rougeL": metrics.mean(seed_means) if seed_means else None,
            "rougeL_std": metrics.std(seed_means) if seed_means else None,
        }

    def over_seeds(key: str) -> tuple[float, float]:
        values = [per_seed[s][key] for s in settings.seeds]
        return metrics.mean(values), metrics.std(values)

    rouge, rouge_std = over_seeds("rougeL")
    em, em_std = over_seeds("exact_match")
    length, length_std = over_seeds("mean_length")
    return ModelScores(
        benchmark=benchmark,
        model=model,
        label=label,
        n=n,
        seeds=list(settings.seeds),
        rouge_l=rouge,
        rouge_l_std=rouge_std,
        exact_match=em,
        exact_match_std=em_std,
        mean_length=length,
        mean_length_std=length_std,
        per_seed=per_seed,
        rouge_l_by_reference_length=by_length,
        settings=settings.as_dict(),
    )


def evaluate_model(
    model: Any,
    tokenizer: Any,
    family: Any,
    benchmark: Benchmark,
    examples: Sequence[EvalExample],
    settings: EvalSettings,
    *,
    model_name: str,
    label: str | None = None,
    teacher: Any | None = None,
    exposure_samples: int = 10,
    progress: Callable[[int], None] | None = None,
) -> tuple[ModelScores, list[Prediction]]:
    """Generate for every example and seed, score, and (when asked) measure calibration and exposure bias.

    ``model``/``tokenizer``/``family``: a loaded model (see :func:`minillm_distill.models.load_model`) on the device
    to use. ``teacher``: a model sharing the tokenizer; when given, ExAccErr against it is measured on the
    same prompts (``exposure_samples`` responses per prompt and side, the first seed)."""
    prompts = [benchmark.format_prompt(example, family) for example in examples]
    predictions = generate_predictions(model, tokenizer, prompts, examples, settings, progress=progress)
    scores = score_predictions(
        predictions,
        settings,
        benchmark=benchmark.name,
        model=model_name,
        label=label or model_name,
        n=len(examples),
        buckets=benchmark.length_buckets,
    )
    scores.extra.update(benchmark.extra_scores(predictions))
    if examples and all(example.choices for example in examples):
        from minillm_distill.eval.analysis import label_word_calibration

        calibration = label_word_calibration(
            model,
            tokenizer,
            prompts,
            [example.choices for example in examples],
            [example.references[0] for example in examples],
            max_prompt_tokens=settings.max_prompt_tokens,
        )
        scores.extra["calibration"] = calibration.as_dict()
    elif examples:
        from minillm_distill.eval.analysis import token_calibration

        calibration = token_calibration(
            model,
            tokenizer,
            prompts,
            [example.references[0] for example in examples],
            max_prompt_tokens=settings.max_prompt_tokens,
            max_reference_tokens=settings.max_new_tokens,
        )
        scores.extra["calibration"] = {"kind": "next-token on references", **calibration.as_dict()}
    if teacher is not None:
        from minillm_distill.eval.analysis import measure_exposure_bias

        curve = measure_exposure_bias(
            model,
            teacher,
            tokenizer,
            prompts,
            samples_per_prompt=exposure_samples,
            max_new_tokens=settings.max_new_tokens,
            max_prompt_tokens=settings.max_prompt_tokens,
            batch_size=settings.batch_size,
            seed=settings.seeds[0],
        )
        scores.extra["exposure_bias"] = {"samples_per_prompt": exposure_samples, "seed": settings.seeds[0]} | (
            curve.as_dict()
        )
    return scores, predictions
