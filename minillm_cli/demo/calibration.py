"""Label-word calibration of the demo's models on the synthetic task's choice prompts (the paper's ECE).

The MiniLLM paper measures calibration on classification prompts: the model's probabilities of the label
words, normalised over the label words, give its prediction (the most probable label) and its confidence
(that label's normalised probability); ECE compares confidence with accuracy. Here the prompts are the
synthetic task's ``check ... => RESPONSE`` questions (:mod:`minillm_plugins.synthetic.choice`), whose label
(``yes`` / ``no``: is the response valid?) is known exactly, and each label word is one token, so a label's
probability is the model's next-token probability right after the prompt (:func:`label_probabilities`, one
forward pass per prompt; the same as :func:`minillm_cli.eval.analysis.label_word_probabilities`).

ECE: 10 equal-width confidence bins ((0, 0.1], (0.1, 0.2], ..., (0.9, 1]; a confidence of exactly 0 goes to
the first), ``sum over bins of (n_bin / n) * |accuracy_bin - mean confidence_bin|``
(:func:`minillm_cli.eval.metrics.expected_calibration_error`). With two labels every confidence is at least
0.5, so only the upper five bins are ever used.

This module also draws ``calibration.png`` (a reliability diagram per model, pooled over its seeds, and the
label-word ECE and accuracy beside the next-token ECE with their spread) and prints the label-word table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

N_BINS = 10


@dataclass(frozen=True)
class LabelWordResult:
    accuracy: float
    """share of prompts whose most probable label word is the correct one, in [0, 1]"""
    ece: float
    bins: list[dict[str, float]]
    """:func:`reliability_bins` of the predictions"""
    n: int


# -- data -----------------------------------------------------------------------------------------------------
def n_choice_records(settings: Any) -> int:
    """How many of the demo's training records are choice prompts (``choice_share`` of ``train_prompts``)."""
    from minillm_plugins.synthetic.choice import n_choice_records as count

    return count(settings.train_prompts, settings.choice_share)


def mix_choice_prompts(world: Any, data_dir: Path, n: int, *, seed: int, question: str = "response") -> tuple[str, ...]:
    """Add ``n`` training-split choice prompts of the kind ``question`` to ``data_dir/train.jsonl`` (shuffled
    in) and write ``choice.json``; returns the words the tokenizer needs for them (none when ``n`` is 0)."""
    from minillm_cli.demo.recipes import MAX_PROMPT
    from minillm_plugins.synthetic.choice import WORDS, max_prompt_words, mix_into, questions, write_choice_spec

    if n <= 0:
        return ()
    longest = max_prompt_words(world, question)
    if longest > MAX_PROMPT:
        from minillm_cli.errors import UsageError

        raise UsageError(
            f"choice prompts of this world reach {longest} words; the demo's prompts hold {MAX_PROMPT}",
            hint="lower world.max_items, or set choice_share=0",
        )
    total = mix_into(data_dir / "train.jsonl", questions(world, n, "train", seed, question), seed=seed)
    write_choice_spec(data_dir, share=n / total, train_records=n, question=question)
    return WORDS


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS) -> list[dict]:
    """Per equal-width bin (the binning of :func:`expected_calibration_error`): ``lo``, ``hi``, ``count``,
    ``accuracy`` and ``confidence`` (means over its members; None when it has none)."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct must have the same length")
    members: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for conf, ok in zip(confidences, correct, strict=True):
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"confidence {conf} is not in [0, 1]")
        index = min(max(0, math.ceil(conf * n_bins) - 1), n_bins - 1)
        members[index].append((conf, bool(ok)))
    return [
        {
            "lo": b / n_bins,
            "hi": (b + 1) / n_bins,
            "count": len(m),
            "accuracy": sum(ok for _, ok in m) / len(m) if m else None,
            "confidence": sum(c for c, _ in m) / len(m) if m else None,
        }
        for b, m in enumerate(members)
    ]


def label_word_metrics(probabilities: Sequence[Sequence[float]], gold: Sequence[int]) -> LabelWordResult:
    """Accuracy, ECE and reliability bins of label-word ``probabilities`` (one row per prompt, normalised over
    the label words) against the ``gold`` label indices. The prediction is the most probable label (the first
    on a tie), its probability the confidence."""
    from minillm_cli.eval.metrics import expected_calibration_error

    if len(probabilities) != len(gold):
        raise ValueError(f"{len(probabilities)} probability rows but {len(gold)} gold labels")
    confidences, correct = [], []
    for row, label in zip(probabilities, gold, strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        confidences.append(float(row[best]))
        correct.append(best == label)
    return LabelWordResult(
        accuracy=sum(correct) / len(correct),
        ece=expected_calibration_error(confidences, correct, N_BINS),
        bins=reliability_bins(confidences, correct, N_BINS),
        n=len(correct),
    )


def label_probabilities(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    labels: Sequence[str],
    *,
    max_prompt_tokens: int = 64,
    batch_size: int = 250,
) -> list[list[float]]:
    """Per prompt, the probabilities of the single-token ``labels`` as the next token, normalised over them
    (a softmax of their log-probabilities)."""
    import torch

    from minillm_cli.eval.prompts import encode_prompt, left_pad, prompt_budget
    from minillm_cli.generation import model_device, pad_token_id

    label_ids = []
    for label in labels:
        ids = list(tokenizer(label, add_special_tokens=False)["input_ids"])
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
            raise ValueError(f"label word {label!r} is not one known token of this tokenizer (ids {ids})")
        label_ids.append(ids[0])
    device = model_device(model)
    budget = prompt_budget(model, max_prompt_tokens, 1)
    target = torch.tensor(label_ids, device=device)
    out: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            rows = [encode_prompt(tokenizer, p, budget) for p in prompts[start : start + batch_size]]
            ids, mask = left_pad(rows, pad_token_id(tokenizer))
            ids, mask = ids.to(device), mask.to(device)
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits
            logprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)[:, target]
            out.extend(torch.softmax(logprobs, dim=-1).tolist())
    return out


def evaluate_choices(
    model: Any, tokenizer: Any, world: Any, n: int, seed: int, question: str = "response"
) -> LabelWordResult:
    """Label-word accuracy and ECE of ``model`` on ``n`` held-out (test split) choice prompts of the kind
    ``question`` drawn with ``seed`` (balanced labels; for ``fact``, at most the test split's distinct facts)."""
    from minillm_plugins.synthetic.choice import LABELS, questions

    samples = questions(world, n, "test", seed, question)
    probs = label_probabilities(model, tokenizer, [s.instruction for s in samples], LABELS)
    return label_word_metrics(probs, [LABELS.index(s.label) for s in samples])


def pool_bins(per_seed: Sequence[Sequence[dict]]) -> list[dict]:
    """The reliability bins of several seeds' predictions together (count-weighted means)."""
    if not per_seed:
        return []
    pooled = []
    for b, first in enumerate(per_seed[0]):
        count = sum(bins[b]["count"] for bins in per_seed)
        entry = {"lo": first["lo"], "hi": first["hi"], "count": count, "accuracy": None, "confidence": None}
        if count:
            for key in ("accuracy", "confidence"):
                entry[key] = sum(bins[b][key] * bins[b]["count"] for bins in per_seed if bins[b]["count"]) / count
        pooled.append(entry)
    return pooled


# -- report -------------------------------------------------------------------------------------------------
COLUMNS = (
    ("label_accuracy", "Label acc %", 1, 100.0),
    ("label_ece", "Label ECE", 3, 1.0),
    ("ece", "Next-token ECE", 3, 1.0),
    ("token_accuracy", "Token acc %", 1, 1.0),
)


def has_label_metrics(results: dict[str, Any]) -> bool:
    return any((results.get(name, {}).get("label_ece") or {}).get("mean") is not None for name in _models(results))


def _models(results: dict[str, Any]) -> list[str]:
    from minillm_cli.demo.config import METHODS

    return [m for m in METHODS if m in results]


def calibration_table(results: dict[str, Any]) -> Any:
    from rich.table import Table

    from minillm_cli.demo.report import SHORT, cell

    settings = results.get("settings", {})
    ev = settings.get("eval", {})
    table = Table(
        title=f"label-word calibration: {ev.get('choice_prompts', '?')} held-out yes/no choice prompts per seed "
        f"(balanced), {settings.get('choice_share', 0):.0%} of the training records",
        caption="Label ECE: over the label words' probabilities normalised over yes/no, 10 equal-width bins. "
        "Next-token ECE: on references of the task prompts (as in the main table).",
    )
    table.add_column("Model", no_wrap=True)
    for _, header, _, _ in COLUMNS:
        table.add_column(header, justify="right")
    for name in _models(results):
        table.add_row(SHORT[name], *(cell(results[name].get(m), d, s) for m, _, d, s in COLUMNS))
    return table


def draw_calibration_figure(results: dict[str, Any], out: Path) -> Path:
    """``calibration.png``: a reliability diagram per model (pooled over its seeds and runs) and bars of
    label-word ECE, label accuracy and next-token ECE (mean +- std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minillm_cli.demo.config import LABELS
    from minillm_cli.demo.figure import COLORS

    names = _models(results)
    reliability = results.get("label_calibration", {})
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))
    ax = axes[0]
    ax.plot([0.5, 1], [0.5, 1], color="black", linestyle="--", linewidth=1, label="perfect calibration")
    for name in names:
        bins = [b for b in reliability.get(name, {}).get("bins", []) if b["count"]]
        if bins:
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                marker="o",
                color=COLORS[name],
                label=LABELS[name],
            )
    ax.set_xlabel("confidence (normalised over yes/no)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.45, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_title("reliability, pooled over seeds and runs", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    for ax, (metric, title, scale) in zip(
        axes[1:],
        (
            ("label_ece", "label-word ECE (lower is better)", 1.0),
            ("label_accuracy", "label-word accuracy % (higher is better)", 100.0),
            ("ece", "next-token ECE (lower is better)", 1.0),
        ),
        strict=True,
    ):
        means, errors, colors, labels = [], [], [], []
        for name in names:
            entry = results[name].get(metric) or {}
            if entry.get("mean") is None:
                continue
            means.append(entry["mean"] * scale)
            errors.append((entry.get("std") or 0.0) * scale)
            colors.append(COLORS[name])
            labels.append(LABELS[name].replace(" (SFT)", "").replace("Student ", ""))
        ax.bar(range(len(means)), means, yerr=errors, color=colors, capsize=4)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    settings = results.get("settings", {})
    ev = settings.get("eval", {})
    fig.suptitle(
        f"minillm demo ({settings.get('mode', '?')}): calibration on {ev.get('choice_prompts', '?')} held-out "
        f"yes/no choice prompts x {len(ev.get('seeds', []))} seeds; mean \u00b1 std (students: over "
        f"{settings.get('train_runs', '?')} training runs)",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
