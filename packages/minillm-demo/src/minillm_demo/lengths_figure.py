"""``lengths.png`` beside ``demo.png``: Rouge-L, its gain over the SFT student and validity by reference length,
and ExAccErr over the generation length, for every model (mean +- std over seeds; students: over runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm_demo.config import LABELS, METHODS
from minillm_demo.figure import COLORS
from minillm_demo.lengths import bucket_order


def _suffixes(results: dict[str, Any], prefix: str) -> list[str]:
    found = {k.split("@", 1)[1] for m in METHODS if m in results for k in results[m] if k.startswith(prefix + "@")}
    return sorted(found, key=bucket_order)


def _series(results: dict[str, Any], name: str, prefix: str, suffixes: list[str], scale: float = 1.0):
    xs, means, stds = [], [], []
    for i, suffix in enumerate(suffixes):
        entry = results.get(name, {}).get(f"{prefix}@{suffix}") or {}
        if entry.get("mean") is None:
            continue
        xs.append(i)
        means.append(entry["mean"] * scale)
        stds.append((entry.get("std") or 0.0) * scale)
    return xs, means, stds


def draw_lengths_figure(results: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = _suffixes(results, "rouge_l")
    lengths = _suffixes(results, "exaccerr")
    names = [m for m in METHODS if m in results]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8), constrained_layout=True)
    panels = (
        (axes[0], "rouge_l", 1.0, "Rouge-L by reference length"),
        (axes[2], "validity", 100.0, "validity % by reference length"),
    )
    for ax, prefix, scale, title in panels:
        for name in names:
            xs, means, stds = _series(results, name, prefix, buckets, scale)
            if xs:
                ax.errorbar(xs, means, yerr=stds, color=COLORS[name], label=LABELS[name], marker="o", capsize=3)
        truth = results.get("true_distribution")
        if truth:
            xs, means, _ = _series({"t": truth}, "t", prefix, buckets, scale)
            if xs:
                ax.plot(xs, means, color="black", linestyle="--", linewidth=1, label="true distribution")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(buckets)), buckets)
        ax.set_xlabel("output symbols of the reference")
        ax.grid(alpha=0.3)
    ax = axes[1]
    _, sft_means, _ = _series(results, "sft", "rouge_l", buckets)
    sft_x = _series(results, "sft", "rouge_l", buckets)[0]
    sft = dict(zip(sft_x, sft_means, strict=True))
    for name in names:
        if name in ("teacher", "sft"):
            continue
        xs, means, stds = _series(results, name, "rouge_l", buckets)
        pts = [(x, m - sft[x], s) for x, m, s in zip(xs, means, stds, strict=True) if x in sft]
        if pts:
            ax.errorbar(*zip(*pts, strict=True), color=COLORS[name], label=LABELS[name], marker="o", capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("Rouge-L minus the SFT student's", fontsize=10)
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel("output symbols of the reference")
    ax.grid(alpha=0.3)
    ax = axes[3]
    for name in names:
        if name == "teacher":
            continue
        xs, means, stds = _series(results, name, "exaccerr", lengths)
        if xs:
            ls = [int(lengths[x]) for x in xs]
            ax.plot(ls, means, color=COLORS[name], label=LABELS[name])
            lo = [m - s for m, s in zip(means, stds, strict=True)]
            hi = [m + s for m, s in zip(means, stds, strict=True)]
            ax.fill_between(ls, lo, hi, color=COLORS[name], alpha=0.15)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("ExAccErr % over generation length (lower is better)", fontsize=10)
    ax.set_xlabel("generation length l (tokens)")
    ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    settings = results.get("settings", {})
    ev = settings.get("eval", {})
    world = settings.get("world") or {}
    shape = f"{world.get('min_items', '?')}-{world.get('max_items', '?')} items x arity 1-{world.get('max_arity', 1)}"
    fig.suptitle(
        f"minillm demo ({settings.get('mode', '?')}), responses of {shape}: "
        f"{ev.get('prompts', '?')} prompts, mean \u00b1 std over {len(ev.get('seeds', []))} seeds "
        f"(students: {settings.get('train_runs', 1)} training runs)",
        fontsize=11,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
