"""The pipeline's report: ``results.json``, ``results.md`` (the table, the paper's Dolly figures beside it, the
side-by-side answers), ``results.png``; and the verdicts against the paper's ordering.

A student's figure is the mean Rouge-L over the sampling seeds, +- their standard deviation (the spread of one
trained model over sampling; training-seed spread needs several training runs, which the budgets do not make).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minillm_distill.provenance import provenance_header, provenance_record

PAPER_DOLLY = {"sft": 23.3, "kd": 22.8, "seqkd": 22.7, "minillm": 24.6}
"""Gu et al. 2023, table 1: GPT-2 1.5B teacher -> GPT-2 120M student, Dolly Rouge-L (the paper has no GKD)."""
SIDE_BY_SIDE_ROWS = ("teacher", "sft", "minillm")
SIDE_BY_SIDE_PROMPTS = 3


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def verdict(a: Sequence[float], b: Sequence[float]) -> str:
    """``a`` against ``b`` (per-seed figures of two models): 'higher' or 'lower' when the difference of the means
    exceeds both spreads added (the sum of the two standard deviations), else 'within the spread'; with a single
    seed there is no spread to compare with."""
    if not a or not b:
        return "not measured"
    if len(a) < 2 or len(b) < 2:
        return "one seed: no spread"
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    spread = _std(a) + _std(b)
    if abs(mean_a - mean_b) <= spread:
        return "within the spread"
    return "higher" if mean_a > mean_b else "lower"


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def side_by_side(paths: Any, labels: dict[str, str], count: int = SIDE_BY_SIDE_PROMPTS) -> list[dict[str, Any]]:
    """The first ``count`` Dolly test prompts with the first seed's answer of each of ``SIDE_BY_SIDE_ROWS``."""
    answers: dict[str, dict[str, str]] = {}
    prompts: dict[str, dict[str, Any]] = {}
    for row in SIDE_BY_SIDE_ROWS:
        file = paths.evals / row / "dolly" / "predictions.jsonl"
        if not file.is_file():
            continue
        first_seed = None
        for line in file.read_text(encoding="utf-8").splitlines():
            p = json.loads(line)
            first_seed = p["seed"] if first_seed is None else first_seed
            if p["seed"] != first_seed:
                continue
            answers.setdefault(p["id"], {})[labels[row]] = p["prediction"]
            prompts.setdefault(p["id"], {"prompt": p["prompt"], "reference": p["references"][0]})
    return [{"id": i, **prompts[i], "answers": answers[i]} for i in list(prompts)[:count]]


def write_report(
    paths: Any,
    settings: dict[str, Any],
    *,
    rows: Sequence[str],
    labels: dict[str, str],
    benchmarks: Sequence[str],
    walls: dict[str, float],
    command: str = "minillm reproduce",
) -> dict[str, Any]:
    summaries = {row: _load(paths.summary(row)) for row in rows}
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        summary = summaries[row] or {"benchmarks": {}}
        table[row] = {name: summary["benchmarks"].get(name) for name in benchmarks}

    def seeds(row: str, bench: str) -> list[float]:
        entry = table[row].get(bench)
        return [v for v in (entry or {}).get("rougeL_per_seed", []) if v is not None]

    verdicts = {
        bench: {
            f"minillm vs {other}": verdict(seeds("minillm", bench), seeds(other, bench))
            for other in ("sft", "kd", "seqkd", "gkd")
        }
        for bench in benchmarks
    }
    results = {
        "settings": settings,
        "rows": {row: {"label": labels[row], **table[row]} for row in rows},
        "verdicts": verdicts,
        "paper_dolly": PAPER_DOLLY,
        "side_by_side": side_by_side(paths, labels),
        "stage_wall_s": walls,
        "provenance": provenance_record(command),
    }
    (paths.root / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (paths.root / "results.md").write_text(markdown(results, rows, labels, benchmarks), encoding="utf-8")
    draw_figure(results, rows, labels, benchmarks, paths.root / "results.png")
    return results


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("rougeL") is None:
        return "-"
    std = entry.get("rougeL_std")
    return f"{entry['rougeL']:.1f} ± {std:.1f}" if std is not None else f"{entry['rougeL']:.1f}"


def table_lines(results: dict[str, Any], rows: Sequence[str], labels: dict[str, str], benchmarks: Sequence[str]):
    sizes = {b: next((results["rows"][r][b]["n"] for r in rows if results["rows"][r].get(b)), None) for b in benchmarks}
    exposure = {r: _exposure(results["rows"][r].get("dolly")) for r in rows}
    head = ["model", *[f"{b} ({sizes[b]})" if sizes[b] else b for b in benchmarks], "paper, Dolly"]
    if any(v is not None for v in exposure.values()):
        head.append("ExAccErr % (Dolly)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [labels[row], *[_cell(results["rows"][row].get(b)) for b in benchmarks]]
        cells.append(f"{PAPER_DOLLY[row]:.1f}" if row in PAPER_DOLLY else "")
        if len(head) > len(cells):
            cells.append(f"{exposure[row]:.1f}" if exposure[row] is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _exposure(entry: dict[str, Any] | None) -> float | None:
    """ExAccErr at the longest measured length, when the budget measured it."""
    return ((entry or {}).get("exposure_bias") or {}).get("final")


def markdown(results: dict[str, Any], rows: Sequence[str], labels: dict[str, str], benchmarks: Sequence[str]) -> str:
    budget = results["settings"]["budget"]
    out = [
        f"# minillm reproduce: {budget['name']} budget",
        "",
        *provenance_header(results.get("provenance")),
        "Rouge-L (x100) on each benchmark (number of prompts in brackets), mean ± std over the sampling seeds "
        f"{budget['eval_seeds']}; responses of at most {budget['eval_max_new_tokens']} tokens.",
        "",
        *table_lines(results, rows, labels, benchmarks),
        "",
        "MiniLLM against each baseline (the difference of the means against the two spreads added):",
        "",
    ]
    for bench, pairs in results["verdicts"].items():
        out.append(f"- {bench}: " + "; ".join(f"{k}: {v}" for k, v in pairs.items()))
    out += ["", "## Three Dolly test prompts, answered side by side (first seed)", ""]
    for item in results["side_by_side"]:
        out += ["**Prompt** (id " + str(item["id"]) + "):", "", "```", item["prompt"].strip(), "```", ""]
        out += [f"*Reference*: {item['reference'].strip()}", ""]
        for label, answer in item["answers"].items():
            out += [f"*{label}*: {answer.strip() or '(empty)'}", ""]
    return "\n".join(out) + "\n"


def draw_figure(
    results: dict[str, Any], rows: Sequence[str], labels: dict[str, str], benchmarks: Sequence[str], out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(benchmarks), figsize=(3.2 * len(benchmarks), 3.6), squeeze=False)
    for ax, bench in zip(axes[0], benchmarks, strict=True):
        means, stds, names = [], [], []
        for row in rows:
            entry = results["rows"][row].get(bench)
            if not entry or entry.get("rougeL") is None:
                continue
            means.append(entry["rougeL"])
            stds.append(entry.get("rougeL_std") or 0.0)
            names.append(labels[row].split(" (")[0])
        ax.bar(range(len(means)), means, yerr=stds, capsize=3, color="#4477aa")
        ax.set_xticks(range(len(means)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(bench)
        ax.set_ylabel("Rouge-L")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
