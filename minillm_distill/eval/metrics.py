"""Evaluation metrics, as pure functions.

Rouge-L
    The F-measure of ``rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)`` (its default
    tokenizer: lower-cased, non-alphanumerics removed, Porter stemming), i.e. LCS-based precision
    P = LCS / |prediction|, recall R = LCS / |reference|, F = 2PR / (P + R) over tokens. With several
    references the maximum over them counts (as the S-NI evaluation does). Reported x100.

Exact match
    1 when the normalised prediction equals a normalised reference (maximum over references), x100. The
    normalisation is SQuAD's: lower-case, drop ASCII punctuation, drop the articles "a", "an", "the", collapse
    whitespace.

Expected calibration error (ECE)
    Predictions are put in ``n_bins`` equal-width confidence bins over [0, 1] (bin b holds confidences in
    (b/n, (b+1)/n]; confidence 0 goes to the first bin). ECE = sum_b |B_b| / N * |accuracy(B_b) -
    mean confidence(B_b)|, a number in [0, 1] (as in the MiniLLM paper's Table 2).

Exposure bias: ExAccErr (MiniLLM section 4 / appendix B.5, after Arora et al. 2022, "Why exposure bias
matters")
    With p the teacher (the "oracle") and q the evaluated model, the per-step error at a prefix is the
    forward KL of the next-token distributions, KL(p(.|y<t, x) || q(.|y<t, x)) =
    E_{y_t ~ p}[log p(y_t|y<t, x) - log q(y_t|y<t, x)], computed exactly over the vocabulary. Then

    * R(l) = sum_{t<=l} E_{y<t ~ q(.|x)} KL_t : the error accumulated over l steps on prefixes the model
      generated itself (free-run);
    * eps(l) = 1/l sum_{t<=l} E_{y<t ~ p(.|x)} KL_t : the average per-step error on prefixes from the teacher
      (teacher forcing), so l * eps(l) is what l steps would cost without any exposure bias;
    * ExAccErr(l) = (R(l) - l eps(l)) / (l eps(l)) x 100 %: the excess error accumulated because the model
      conditions on its own outputs.

    The expectations are Monte-Carlo averages over sampled responses (the paper samples 10 per prompt). A
    response that ended (EOS) before step l has no step l: :func:`exposure_bias_curve` averages the
    cumulative sums over the responses that reach l (as Arora et al.'s code does); the EOS step counts.

Rouge-L by reference length
    Examples are grouped by the length (whitespace-separated words) of their first reference; the paper uses
    the buckets [0, 5], [6, 10] and [11, +inf) on S-NI and UnNI.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LENGTH_BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 5), (6, 10), (11, None))


# -- Rouge-L and exact match ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:  # pragma: no cover - an install problem
        from minillm_distill.errors import ResourceError

        raise ResourceError(
            "the `rouge-score` package is not installed", hint="pip install rouge-score (a minillm dependency)"
        ) from exc
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """Rouge-L F-measure (x100) of ``prediction``, maximum over ``references``."""
    if not references:
        raise ValueError("rouge_l needs at least one reference")
    scorer = _rouge_scorer()
    return 100.0 * max(scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """100 if the normalised prediction equals a normalised reference, else 0."""
    if not references:
        raise ValueError("exact_match needs at least one reference")
    pred = normalize_answer(prediction)
    return 100.0 if any(pred == normalize_answer(ref) for ref in references) else 0.0


def reference_length(references: Sequence[str]) -> int:
    """Length of the first reference in whitespace-separated words (the bucketing key)."""
    return len(references[0].split()) if references else 0


def bucket_name(bucket: tuple[int, int | None]) -> str:
    low, high = bucket
    return f"{low}-{high}" if high is not None else f"{low}+"


def bucket_of(length: int, buckets: Sequence[tuple[int, int | None]] = LENGTH_BUCKETS) -> str | None:
    for low, high in buckets:
        if length >= low and (high is None or length <= high):
            return bucket_name((low, high))
    return None


# -- summary statistics -----------------------------------------------------------------------------------


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def std(values: Iterable[float]) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    values = list(values)
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


# -- calibration ------------------------------------------------------------------------------------------


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins (see the module docstring)."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct must have the same length")
    if not confidences:
        raise ValueError("expected_calibration_error needs at least one prediction")
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for conf, ok in zip(confidences, correct, strict=True):
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"confidence {conf} is not in [0, 1]")
        index = max(0, math.ceil(conf * n_bins) - 1)
        bins[min(index, n_bins - 1)].append((conf, bool(ok)))
    total = len(confidences)
    ece = 0.0
    for members in bins:
        if members:
            accuracy = sum(ok for _, ok in members) / len(members)
            confidence = sum(conf for conf, _ in members) / len(members)
            ece += len(members) / total * abs(accuracy - confidence)
    return ece


# -- exposure bias ----------------------------------------------------------------------------------------


@dataclass
class ExposureBiasCurve:
    """ExAccErr as a function of the generation length ``l`` (one entry per length)."""

    lengths: list[int]
    accumulated_error: list[float]
    """R(l): KL accumulated over l steps of the model's own (free-run) responses."""
    per_step_error: list[float]
    """eps(l): mean per-step KL over l steps of the teacher's responses (teacher forcing)."""
    exaccerr: list[float]
    """(R(l) - l eps(l)) / (l eps(l)) x 100."""
    model_samples: list[int]
    teacher_samples: list[int]

    def at(self, length: int) -> float | None:
        return self.exaccerr[self.lengths.index(length)] if length in self.lengths else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "lengths": self.lengths,
            "exaccerr": self.exaccerr,
            "R": self.accumulated_error,
            "epsilon": self.per_step_error,
            "model_samples": self.model_samples,
            "teacher_samples": self.teacher_samples,
        }


def exposure_bias_curve(
    model_prefix_kl: Sequence[Sequence[float]],
    teacher_prefix_kl: Sequence[Sequence[float]],
    max_length: int | None = None,
) -> ExposureBiasCurve:
    """ExAccErr(l) from per-step KL(p || q) sequences: one sequence per response the *model* sampled
    (``model_prefix_kl``) and one per response the *teacher* sampled (``teacher_prefix_kl``); each holds the
    KL at steps 1..T of that response. Lengths run from 1 to the longest l that both sides reach (at most
    ``max_length``); lengths where l eps(l) = 0 are skipped (no excess can be defined)."""
    longest = min(
        max((len(s) for s in model_prefix_kl), default=0), max((len(s) for s in teacher_prefix_kl), default=0)
    )
    if max_length is not None:
        longest = min(longest, max_length)
    model_cum = [_cumulative(s) for s in model_prefix_kl]
    teacher_cum = [_cumulative(s) for s in teacher_prefix_kl]
    curve = ExposureBiasCurve([], [], [], [], [], [])
    for length in range(1, longest + 1):
        r = [c[length - 1] for c in model_cum if len(c) >= length]
        e = [c[length - 1] for c in teacher_cum if len(c) >= length]
        accumulated, teacher_total = mean(r), mean(e)
        if teacher_total <= 0.0:
            continue
        curve.lengths.append(length)
        curve.accumulated_error.append(accumulated)
        curve.per_step_error.append(teacher_total / length)
        curve.exaccerr.append((accumulated - teacher_total) / teacher_total * 100.0)
        curve.model_samples.append(len(r))
        curve.teacher_samples.append(len(e))
    return curve


def _cumulative(values: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for v in values:
        total += float(v)
        out.append(total)
    return out
