"""``demo.png``: the training curves of every stage and run (top), the final comparison with error bars (bottom)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minillm_demo.config import LABELS, METHODS
from minillm_demo.recipes import stage

CURVES = (
    ("teacher", "loss", "cross entropy"),
    ("sft", "loss", "cross entropy"),
    ("kd", "loss", "forward KL"),
    ("seqkd", "loss", "CE on teacher samples"),
    ("gkd", "loss", "JSD(0.5)"),
    ("minillm", "single_step_loss", "per-token KL(q || p)"),
)
BARS = (
    ("validity", "validity %", 100.0),
    ("coverage", "coverage %", 100.0),
    ("rouge_l", "Rouge-L", 1.0),
    ("error_hybrid", "mode hybrids % (lower is better)", 100.0),
    ("exposure_bias", "ExAccErr % (lower is better)", 1.0),
    ("ece", "ECE (lower is better)", 1.0),
)
COLORS = {
    "teacher": "#4d4d4d",
    "sft": "#9e9e9e",
    "kd": "#1f77b4",
    "seqkd": "#2ca02c",
    "gkd": "#9467bd",
    "minillm": "#d62728",
}


def read_curve(metrics_file: Path, key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    if not metrics_file.is_file():
        return steps, values
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        value = row.get(key, row.get("loss"))
        if isinstance(value, int | float) and value == value:
            steps.append(int(row["step"]))
            values.append(float(value))
    return steps, values


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def draw_figure(results: dict[str, Any], runs: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(18, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, max(len(CURVES), len(BARS)))
    kd_ratio = results.get("settings", {}).get("kd_ratio", 1.0)
    n_runs = int(results.get("settings", {}).get("train_runs", 1))
    for col, (name, key, what) in enumerate(CURVES):
        if name == "kd" and kd_ratio < 1:
            what = f"{kd_ratio:g} FKL + {1 - kd_ratio:g} CE"
        ax = fig.add_subplot(grid[0, col])
        folders = [runs / "teacher"] if name == "teacher" else [runs / stage(name, r) for r in range(n_runs)]
        for i, folder in enumerate(folders):  # every training run, the first one drawn strongest
            steps, values = read_curve(folder / "metrics.jsonl", key)
            if values:
                window = max(1, len(values) // 50)
                if i == 0:
                    ax.plot(steps, values, color=COLORS[name], alpha=0.2, linewidth=0.8)
                ax.plot(
                    steps,
                    smooth(values, window),
                    color=COLORS[name],
                    linewidth=1.6 if i == 0 else 0.9,
                    alpha=1.0 if i == 0 else 0.6,
                )
        ax.set_title(f"{LABELS[name]}: {what}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    names = [m for m in METHODS if m in results]
    for col, (metric, title, scale) in enumerate(BARS):
        ax = fig.add_subplot(grid[1, col])
        bar_panel(ax, results, names, metric, scale)
        truth = (results.get("true_distribution", {}).get(metric) or {}).get("mean")
        if truth is not None:
            ax.axhline(truth * scale, color="black", linestyle="--", linewidth=1, label="true distribution")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    settings = results.get("settings", {})
    ev = settings.get("eval", {})
    fig.suptitle(
        f"minillm demo ({settings.get('mode', '?')}): teacher {_count(settings.get('teacher_parameters'))} -> student "
        f"{_count(settings.get('student_parameters'))} parameters; mean \u00b1 std over {len(ev.get('seeds', []))} "
        f"seeds x {ev.get('prompts', '?')} held-out prompts (students: {n_runs} training run"
        f"{'s' * (n_runs > 1)})",
        fontsize=12,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def bar_panel(ax: Any, results: dict[str, Any], names: list[str], metric: str, scale: float = 1.0) -> None:
    """Bars of ``metric`` (mean x ``scale``, the std as error bar) for every model of ``names`` that has it, in
    the models' colours."""
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


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"
