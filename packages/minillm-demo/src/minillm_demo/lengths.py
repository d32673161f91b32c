"""The demo's length report: validity and Rouge-L by reference length, ExAccErr over the generation length, and
how many training runs a difference between two methods needs before it is more than its spread.

Per sampling seed, :func:`bucket_scores` splits the test prompts by the length of their first reference (a
draw of the true distribution, as ``minillm eval`` buckets by the first reference; counted in *output symbols*,
the words after the mode word) into the world's buckets (:func:`minillm_demo.synthetic.task.length_buckets`)
and gives, per bucket, the share of prompts in it, the validity of the responses and their Rouge-L; and
:func:`curve_scores` flattens an ExAccErr curve into one value per generation length. The keys
(``validity@2-4``, ``rouge_l@13-24``, ``share@5-8``, ``exaccerr@10``) sit beside the demo's other per-seed
metrics, so results.json summarises them the same way (mean and std over seeds; over training runs for a
student).

:func:`length_report` then compares MiniLLM with every other student per bucket and length:
the difference of the means, its standard error with the runs there are, and :func:`runs_to_resolve` (the
runs per method at which that difference, at the measured spread, would be two standard errors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BASELINE = "minillm"
"""the method the others are compared with"""


def bucket_label(bucket: tuple[int, int | None]) -> str:
    low, high = bucket
    return f"{low}-{high}" if high is not None else f"{low}+"


def output_count(reference: str) -> int:
    """Output symbols of a reference text (its words after the mode word)."""
    return max(len(reference.split()) - 1, 0)


def bucket_of(outputs: int, buckets: Sequence[tuple[int, int | None]]) -> str | None:
    for low, high in buckets:
        if outputs >= low and (high is None or outputs <= high):
            return bucket_label((low, high))
    return None


def bucket_scores(
    buckets: Sequence[tuple[int, int | None]],
    reference_lengths: Sequence[int],
    valid: Sequence[bool],
    rouge: Sequence[float],
) -> dict[str, float | None]:
    """``share@B``, ``validity@B`` and ``rouge_l@B`` for every bucket ``B`` of one seed's responses (one per
    prompt; ``reference_lengths`` in output symbols). An empty bucket has share 0 and None for the rest."""
    if not len(reference_lengths) == len(valid) == len(rouge):
        raise ValueError(f"{len(reference_lengths)} lengths, {len(valid)} verdicts, {len(rouge)} Rouge-L values")
    members: dict[str, list[int]] = {bucket_label(b): [] for b in buckets}
    for i, length in enumerate(reference_lengths):
        name = bucket_of(length, buckets)
        if name is not None:
            members[name].append(i)
    n = max(len(reference_lengths), 1)
    out: dict[str, float | None] = {}
    for name, rows in members.items():
        out[f"share@{name}"] = len(rows) / n
        out[f"validity@{name}"] = sum(valid[i] for i in rows) / len(rows) if rows else None
        out[f"rouge_l@{name}"] = sum(rouge[i] for i in rows) / len(rows) if rows else None
    return out


def curve_scores(lengths: Sequence[int], exaccerr: Sequence[float], longest: int) -> dict[str, float | None]:
    """``exaccerr@L`` for L = 1..``longest`` from an ExAccErr curve (None where the curve has no value: no
    response of both sides reached L, or the teacher's error there is 0)."""
    at = dict(zip(lengths, exaccerr, strict=True))
    return {f"exaccerr@{length}": at.get(length) for length in range(1, longest + 1)}


def runs_to_resolve(a: Sequence[float], b: Sequence[float]) -> int | None:
    """Runs per method at which the difference of the means of ``a`` and ``b`` (one value per run) is two
    standard errors at their measured spread: ``ceil(4 (s_a^2 + s_b^2) / d^2)`` (at least 2). None when there
    are fewer than 2 values a side or no difference."""
    if len(a) < 2 or len(b) < 2:
        return None
    d = _mean(a) - _mean(b)
    if d == 0:
        return None
    return max(2, math.ceil(4 * (_var(a) + _var(b)) / d**2))


def length_report(results: dict[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Per bucket and per generation length: each model's mean and std (from results.json's entries), and
    :data:`BASELINE` against every other student (``diff``, ``se``, ``resolved``: |diff| > 2 se, ``runs_needed``)."""
    present = [m for m in models if m in results]
    keys = sorted(
        {k for m in present for k in results[m] if "@" in k},
        key=lambda k: (k.split("@")[0], bucket_order(k.split("@")[1])),
    )
    out: dict[str, Any] = {"metrics": {}, "comparisons": {}}
    for key in keys:
        out["metrics"][key] = {
            m: {"mean": results[m][key].get("mean"), "std": results[m][key].get("std")}
            for m in present
            if key in results[m]
        }
        if BASELINE not in present or key.startswith("share@"):
            continue
        base = _values(results[BASELINE].get(key))
        for other in present:
            if other in (BASELINE, "teacher"):
                continue
            values = _values(results[other].get(key))
            if base is None or values is None:
                continue
            out["comparisons"].setdefault(key, {})[other] = compare(base, values)
    return out


def compare(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """``a`` minus ``b`` (one value per run): the difference of the means, its standard error, whether it is
    over two standard errors, and :func:`runs_to_resolve`."""
    d = _mean(a) - _mean(b)
    se = math.sqrt(_var(a) / len(a) + _var(b) / len(b)) if len(a) > 1 and len(b) > 1 else None
    return {
        "diff": d,
        "se": se,
        "resolved": se is not None and abs(d) > 2 * se,
        "runs": min(len(a), len(b)),
        "runs_needed": runs_to_resolve(a, b),
    }


def _values(entry: dict[str, Any] | None) -> list[float] | None:
    if not entry:
        return None
    seeds = entry.get("seeds") or []
    if not seeds or any(v is None for v in seeds):
        return None
    return [float(v) for v in seeds]


def bucket_order(suffix: str) -> int:
    """Sort key of a length bucket's suffix (``0-5``, ``6-10``, ``31+``): its first bound; 0 if none."""
    head = suffix.split("-")[0].rstrip("+")
    return int(head) if head.isdigit() else 0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _var(values: Sequence[float]) -> float:
    m = _mean(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def summary_lines(results: dict[str, Any], lengths: Sequence[int] = (5, 10, 15, 20, 25)) -> list[str]:
    """Plain-text lines of the length report: ExAccErr at a few generation lengths, then every MiniLLM
    comparison (difference +- its standard error, and the runs per method it needs)."""
    from minillm_demo.config import METHODS

    report = results.get("lengths") or length_report(results, METHODS)
    out = ["ExAccErr % at generation length l (mean +- std):"]
    for name in METHODS:
        if name == "teacher" or name not in results:
            continue
        cells = []
        for length in lengths:
            entry = results[name].get(f"exaccerr@{length}") or {}
            mean = entry.get("mean")
            cells.append(f"l={length}: " + ("n/a" if mean is None else f"{mean:.1f} +- {entry.get('std') or 0:.1f}"))
        out.append(f"  {name:8s} " + "; ".join(cells))
    out.append(
        f"{BASELINE} minus each student: diff +- se (values per model, one per training run and sampling seed "
        "-> values per model for |diff| = 2 se at this spread)"
    )
    for key, others in report.get("comparisons", {}).items():
        if key.startswith("exaccerr@") and int(key.split("@")[1]) not in lengths:
            continue
        parts = []
        for other, c in others.items():
            se = "?" if c["se"] is None else f"{c['se']:.2f}"
            mark = "*" if c["resolved"] else ""
            parts.append(f"{other} {c['diff']:+.2f}{mark} +- {se} ({c['runs']} -> {c['runs_needed']})")
        out.append(f"  {key:14s} " + "; ".join(parts))
    out.append("  (* = over two standard errors)")
    return out
