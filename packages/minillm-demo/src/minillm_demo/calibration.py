"""Label-word calibration of the demo's models (the paper's ECE): pair choices and choice prompts.

The MiniLLM paper measures calibration on classification prompts: the model's probabilities of the label
words, normalised over the label words, give its prediction (the most probable label) and its confidence
(that label's normalised probability); ECE compares confidence with accuracy. Here the prompts are the
synthetic task's ``check ... => RESPONSE`` questions (:mod:`minillm_demo.synthetic.choice`), whose label
(``yes`` / ``no``: is the response valid?) is known exactly, and each label word is one token, so a label's
probability is the model's next-token probability right after the prompt (:func:`label_probabilities`, one
forward pass per prompt; the same as :func:`minillm_distill.eval.analysis.label_word_probabilities`). Pair choices
(:mod:`minillm_demo.synthetic.pairs`, every demo) are the same measurement with two output words as the
labels, read after a true response's prefix (:func:`pair_probabilities`).

ECE: 10 equal-width confidence bins ((0, 0.1], (0.1, 0.2], ..., (0.9, 1]; a confidence of exactly 0 goes to
the first), ``sum over bins of (n_bin / n) * |accuracy_bin - mean confidence_bin|``
(:func:`minillm_distill.api.expected_calibration_error`). With two labels every confidence is at least
0.5, so only the upper five bins are ever used.

This module also draws ``calibration.png`` (reliability diagrams per model, pooled over its seeds, and the
pair and label-word ECE and accuracy beside the next-token ECE with their spread) and prints their table.
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
    from minillm_demo.synthetic.choice import n_choice_records as count

    return count(settings.train_prompts, settings.choice_share)


def mix_choice_prompts(world: Any, data_dir: Path, n: int, *, seed: int, question: str = "response") -> tuple[str, ...]:
    """Add ``n`` training-split choice prompts of the kind ``question`` to ``data_dir/train.jsonl`` (shuffled
    in) and write ``choice.json``; returns the words the tokenizer needs for them (none when ``n`` is 0)."""
    from minillm_demo.recipes import MAX_PROMPT
    from minillm_demo.synthetic.choice import WORDS, max_prompt_words, mix_into, questions, write_choice_spec

    if n <= 0:
        return ()
    longest = max_prompt_words(world, question)
    if longest > MAX_PROMPT:
        from minillm_distill.api import UsageError

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
    from minillm_distill.api import expected_calibration_error

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


def _word_id(tokenizer: Any, word: str) -> int:
    ids = list(tokenizer(word, add_special_tokens=False)["input_ids"])
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"label word {word!r} is not one known token of this tokenizer (ids {ids})")
    return ids[0]


def _normalised_next_token(
    model: Any, tokenizer: Any, rows: Sequence[list[int]], label_ids: Sequence[Sequence[int]], batch_size: int
) -> list[list[float]]:
    """Per row of token ids, the probabilities of its ``label_ids`` as the next token, normalised over them."""
    import torch

    from minillm_distill.api import left_pad, model_device, pad_token_id

    device = model_device(model)
    out: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, mask = left_pad(list(rows[start : start + batch_size]), pad_token_id(tokenizer))
            ids, mask = ids.to(device), mask.to(device)
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits
            logprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)
            target = torch.tensor(label_ids[start : start + batch_size], device=device)
            out.extend(torch.softmax(logprobs.gather(1, target), dim=-1).tolist())
    return out


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
    from minillm_distill.api import encode_prompt, prompt_budget

    label_ids = [_word_id(tokenizer, label) for label in labels]
    budget = prompt_budget(model, max_prompt_tokens, 1)
    rows = [encode_prompt(tokenizer, p, budget) for p in prompts]
    return _normalised_next_token(model, tokenizer, rows, [label_ids] * len(rows), batch_size)


def pair_probabilities(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    pairs: Sequence[Any],
    *,
    max_prompt_tokens: int = 64,
    batch_size: int = 250,
) -> list[list[float]]:
    """Per (formatted prompt, :class:`~minillm_demo.synthetic.pairs.PairChoice`): the probabilities of its
    ``valid`` and ``hybrid`` words as the next token after the prompt and the choice's response ``prefix``
    (teacher forcing, the tokens training saw), normalised over the two; the valid word first."""
    from minillm_distill.api import encode_prompt, prompt_budget

    if len(prompts) != len(pairs):
        raise ValueError(f"{len(prompts)} prompts but {len(pairs)} pair choices")
    prefixes = [list(tokenizer(pair.prefix, add_special_tokens=False)["input_ids"]) for pair in pairs]
    budget = prompt_budget(model, max_prompt_tokens, max(map(len, prefixes), default=0) + 1)
    rows = [encode_prompt(tokenizer, prompt, budget) + prefix for prompt, prefix in zip(prompts, prefixes, strict=True)]
    label_ids = [[_word_id(tokenizer, pair.valid), _word_id(tokenizer, pair.hybrid)] for pair in pairs]
    return _normalised_next_token(model, tokenizer, rows, label_ids, batch_size)


def evaluate_pairs(
    model: Any, tokenizer: Any, world: Any, prompts: Sequence[str], instructions: Sequence[str], seed: int
) -> LabelWordResult:
    """Accuracy and ECE of ``model`` on one pair choice per held-out prompt (``prompts`` formatted for the
    model, ``instructions`` their task text), drawn with ``seed``
    (:func:`minillm_demo.synthetic.pairs.pair_choices`)."""
    from minillm_demo.synthetic.pairs import pair_choices

    pairs = pair_choices(world, instructions, seed)
    probs = pair_probabilities(model, tokenizer, prompts, pairs)
    # every other choice lists the hybrid first, so a tie (which label_word_metrics gives to the first word)
    # counts right in half of the choices, not in all of them
    rows = [row if i % 2 == 0 else row[::-1] for i, row in enumerate(probs)]
    return label_word_metrics(rows, [i % 2 for i in range(len(rows))])


def evaluate_choices(
    model: Any, tokenizer: Any, world: Any, n: int, seed: int, question: str = "response"
) -> LabelWordResult:
    """Label-word accuracy and ECE of ``model`` on ``n`` held-out (test split) choice prompts of the kind
    ``question`` drawn with ``seed`` (balanced labels; for ``fact``, at most the test split's distinct facts)."""
    from minillm_demo.synthetic.choice import LABELS, questions

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
PAIR_COLUMNS = (
    ("pair_accuracy", "Pair acc %", 1, 100.0),
    ("pair_ece", "Pair ECE", 3, 1.0),
)
LABEL_COLUMNS = (
    ("label_accuracy", "Label acc %", 1, 100.0),
    ("label_ece", "Label ECE", 3, 1.0),
)
TOKEN_COLUMNS = (
    ("ece", "Next-token ECE", 3, 1.0),
    ("token_accuracy", "Token acc %", 1, 1.0),
)


def _has(results: dict[str, Any], metric: str) -> bool:
    return any((results.get(name, {}).get(metric) or {}).get("mean") is not None for name in _models(results))


def has_label_metrics(results: dict[str, Any]) -> bool:
    """Whether the models were scored on choice prompts (``choice_share`` > 0)."""
    return _has(results, "label_ece")


def has_calibration_metrics(results: dict[str, Any]) -> bool:
    """Whether there is a calibration table to show: pair choices (every demo since they exist) or labels."""
    return _has(results, "pair_ece") or has_label_metrics(results)


def _models(results: dict[str, Any]) -> list[str]:
    from minillm_demo.config import METHODS

    return [m for m in METHODS if m in results]


def _columns(results: dict[str, Any]) -> tuple[tuple[str, str, int, float], ...]:
    pairs = PAIR_COLUMNS if _has(results, "pair_ece") else ()
    labels = LABEL_COLUMNS if has_label_metrics(results) else ()
    return (*pairs, *labels, *TOKEN_COLUMNS)


def _choice_counts(results: dict[str, Any], key: str) -> str:
    """How many choices one seed scored (from the pooled bins: their count over the seeds they pool)."""
    entry = (results.get(key) or {}).get("teacher") or {}
    seeds = entry.get("seeds") or 0
    return str(sum(b["count"] for b in entry.get("bins", [])) // seeds) if seeds else "?"


def calibration_table(results: dict[str, Any]) -> Any:
    from rich.table import Table

    from minillm_demo.report import SHORT, cell

    settings = results.get("settings", {})
    parts = []
    if _has(results, "pair_ece"):
        parts.append(f"{_choice_counts(results, 'pair_calibration')} held-out pair choices per seed")
    if has_label_metrics(results):
        question = settings.get("choice_question", "response")
        parts.append(
            f"{_choice_counts(results, 'label_calibration')} held-out yes/no {question} questions per seed "
            f"(balanced; {settings.get('choice_share', 0):.0%} of the training records)"
        )
    table = Table(
        title="calibration on label words: " + "; ".join(parts),
        caption="Pair: a true response's next output against another mode's output for the same symbol, "
        "probabilities normalised over the two. Label: yes/no normalised over the two. ECE: 10 equal-width bins. "
        "Next-token ECE: on references of the task prompts (as in the main table).",
    )
    table.add_column("Model", no_wrap=True)
    columns = _columns(results)
    for _, header, _, _ in columns:
        table.add_column(header, justify="right")
    for name in _models(results):
        table.add_row(SHORT[name], *(cell(results[name].get(m), d, s) for m, _, d, s in columns))
    return table


def draw_calibration_figure(results: dict[str, Any], out: Path) -> Path:
    """``calibration.png``: reliability diagrams per model (pooled over its seeds and runs) of the pair choices
    (solid) and the yes/no label words (dashed, when measured), and bars (mean +- std) of every ECE and
    accuracy of the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minillm_demo.config import LABELS
    from minillm_demo.figure import COLORS, bar_panel

    names = _models(results)
    bars = [(m, h, s) for m, h, _, s in _columns(results) if m != "token_accuracy"]
    fig, axes = plt.subplots(1, 1 + len(bars), figsize=(5 * (1 + len(bars)), 4.8))
    ax = axes[0]
    ax.plot([0.5, 1], [0.5, 1], color="black", linestyle="--", linewidth=1, label="perfect calibration")
    for key, style, tag in (("pair_calibration", "-", "pair"), ("label_calibration", ":", "yes/no")):
        reliability = results.get(key, {})
        for name in names:
            bins = [b for b in reliability.get(name, {}).get("bins", []) if b["count"]]
            if bins:
                ax.plot(
                    [b["confidence"] for b in bins],
                    [b["accuracy"] for b in bins],
                    marker="o",
                    linestyle=style,
                    color=COLORS[name],
                    label=f"{LABELS[name]} ({tag})",
                )
    ax.set_xlabel("confidence (normalised over the two words)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.45, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_title("reliability, pooled over seeds and runs", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    for ax, (metric, header, scale) in zip(axes[1:], bars, strict=True):
        bar_panel(ax, results, names, metric, scale)
        better = "higher" if "acc" in header else "lower"
        ax.set_title(f"{header} ({better} is better)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    settings = results.get("settings", {})
    fig.suptitle(
        f"minillm demo ({settings.get('mode', '?')}): calibration on label words x "
        f"{len(settings.get('eval', {}).get('seeds', []))} seeds; mean \u00b1 std (students: over "
        f"{settings.get('train_runs', '?')} training runs)",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
