"""``scale.png``: validity and Rouge-L of every method against the student's parameter count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm_demo.config import LABELS
from minillm_demo.figure import COLORS

PANELS = (("validity", "validity %", 100.0), ("rouge_l", "Rouge-L", 1.0), ("coverage", "coverage %", 100.0))


def series(results: dict[str, Any], method: str, metric: str, scale: float = 1.0) -> tuple[list, list, list]:
    """(parameters, means, stds) of ``method``'s ``metric`` over the sizes that measured it, smallest first."""
    xs, ys, errs = [], [], []
    for row in results["sizes"]:
        entry = (row["models"].get(method) or {}).get(metric) or {}
        if entry.get("mean") is None:
            continue
        xs.append(row["parameters"])
        ys.append(entry["mean"] * scale)
        errs.append((entry.get("std") or 0.0) * scale)
    return xs, ys, errs


def draw_scale_figure(results: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 4.2), constrained_layout=True)
    for ax, (metric, title, scale) in zip(axes, PANELS, strict=True):
        for method in results["methods"]:
            xs, ys, errs = series(results, method, metric, scale)
            if xs:
                style = "--" if method == "sft" else "-"
                ax.errorbar(xs, ys, yerr=errs, color=COLORS[method], linestyle=style, marker="o", capsize=3,
                            label=LABELS[method].replace("Student ", ""))  # fmt: skip
        teacher = (results.get("teacher", {}).get(metric) or {}).get("mean")
        if teacher is not None:
            ax.axhline(teacher * scale, color=COLORS["teacher"], linestyle=":", linewidth=1, label="teacher")
        ax.set_xscale("log")
        ticks = [row["parameters"] for row in results["sizes"]]
        ax.set_xticks(ticks, [f"{t / 1000:.0f}k" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("student parameters")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    sizes = ", ".join(f"{r['name']} ({r['parameters']:,})" for r in results["sizes"])
    teacher = results.get("teacher", {}).get("parameters")
    fig.suptitle(f"students {sizes} under one teacher ({teacher:,} parameters); mean \u00b1 std over runs x seeds",
                 fontsize=10)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
