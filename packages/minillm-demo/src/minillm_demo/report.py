"""The demo's results table: one row per model, mean +- std over seeds (for students: over training runs too)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from minillm_demo.config import METHODS, RECIPES

# (metric, header, digits, scale, better): scale multiplies the stored value for display
COLUMNS = (
    ("validity", "Valid %", 1, 100.0, "higher"),
    ("coverage", "Cover %", 1, 100.0, "higher"),
    ("rouge_l", "Rouge-L", 1, 1.0, "higher"),
    ("mean_length", "Length", 2, 1.0, ""),
    ("error_hybrid", "Hybrid %", 1, 100.0, "lower"),
    ("exposure_bias", "ExAccErr", 1, 1.0, "lower"),
    ("ece", "ECE", 3, 1.0, "lower"),
)


SHORT = {
    "teacher": "Teacher",
    "sft": "SFT",
    "kd": "KD",
    "seqkd": "SeqKD",
    "gkd": "GKD",
    "minillm": "MiniLLM",
    "true_distribution": "True dist.",
}


WIDE = 104
"""console columns the one-line table needs; narrower consoles get the std on a second line"""


def cell(entry: dict[str, Any] | None, digits: int, scale: float = 1.0, *, stacked: bool = False) -> str:
    """``mean +- std`` of a results.json entry, or ``n/a``."""
    if not entry or entry.get("mean") is None:
        return "n/a"
    mean, std = entry["mean"] * scale, (entry.get("std") or 0.0) * scale
    return f"{mean:.{digits}f}{chr(10) if stacked else ''}\u00b1{std:.{digits}f}"


def results_table(results: dict[str, Any], *, stacked: bool = False) -> Table:
    settings = results.get("settings", {})
    ev = settings.get("eval", {})
    seeds = len(ev.get("seeds", ())) or "?"
    runs = settings.get("train_runs", 1)
    per_run = seeds // runs if isinstance(seeds, int) else "?"
    title = (
        f"minillm demo ({settings.get('mode', '?')}): {ev.get('prompts', '?')} held-out prompts x {seeds} seeds, "
        f"one sample each, T = 1; students: {runs} training run{'s' * (runs > 1)}, "
        f"{per_run} seed{'s' * (per_run != 1)} each"
    )
    table = Table(title=title, caption=_caption(settings), padding=(0, 1))
    table.add_column("Model", no_wrap=True)
    for _, header, _, _, better in COLUMNS:
        arrow = " \u2191" if better == "higher" else " \u2193" if better == "lower" else ""
        table.add_column(header + arrow, justify="right")
    rows = [*METHODS, "true_distribution"]
    for name in rows:
        if name not in results:
            continue
        table.add_row(
            SHORT.get(name, name),
            *(
                cell(results[name].get(metric), digits, scale, stacked=stacked)
                for metric, _, digits, scale, _ in COLUMNS
            ),
            style="italic dim" if name == "true_distribution" else None,
            end_section=name in ("sft", "minillm"),
        )
    return table


def _caption(settings: dict[str, Any]) -> str:
    ev = settings.get("eval", {})
    recipes = "; ".join(f"{SHORT[name]}: {recipe}" for name, recipe in RECIPES.items())
    return (
        f"Teacher and SFT: dataset x sft; {recipes} (sampler x divergence), all from the SFT student. "
        f"Hybrid: share of responses mixing modes. ExAccErr: % at l = {ev.get('exposure_length', '?')} against "
        "the teacher. ECE: next-token, on references of the true distribution. Rouge-L: against "
        f"{ev.get('references', '?')} references. Coverage grows with the sample count: compare with True dist."
    )


def results_markdown(results: dict[str, Any]) -> str:
    """``DIR/results.md``: the results table as Markdown, under a header naming the command, machine and date
    that produced it (for docs/results/)."""
    from minillm_distill.api import provenance_header

    table = results_table(results)
    head = [
        str(c.header).replace("\u2191", "(higher is better)").replace("\u2193", "(lower is better)")
        for c in table.columns
    ]
    lines = [
        "# minillm demo",
        "",
        *provenance_header(results.get("provenance")),
        str(table.title),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name in [*METHODS, "true_distribution"]:
        if name not in results:
            continue
        cells = [cell(results[name].get(metric), digits, scale) for metric, _, digits, scale, _ in COLUMNS]
        lines.append("| " + " | ".join([SHORT.get(name, name), *cells]).replace("\u00b1", " ± ") + " |")
    lines += ["", str(table.caption), ""]
    walls = results.get("wall_times", {})
    if walls:
        lines += [f"Wall time {walls.get('total', 0):.0f} s.", ""]
    return "\n".join(lines)


def print_table(results: dict[str, Any], console: Console) -> None:
    console.print(results_table(results, stacked=console.width < WIDE))
    walls = results.get("wall_times", {})
    if walls:
        parts = [f"{name} {seconds:.0f}s" for name, seconds in walls.items() if name != "total"]
        console.print(f"wall time {walls.get('total', 0):.0f} s: " + ", ".join(parts))


def lengths_table(results: dict[str, Any]) -> Table | None:
    """Rouge-L and validity per reference-length bucket, one row per model (None when no bucket was measured)."""
    from minillm_demo.lengths import bucket_order

    names = [*METHODS, "true_distribution"]
    buckets = sorted(
        {k.split("@", 1)[1] for n in names if n in results for k in results[n] if k.startswith("rouge_l@")},
        key=bucket_order,
    )
    if not buckets:
        return None
    shares = (results.get("teacher") or {}).get(f"share@{buckets[0]}")
    table = Table(
        title="by reference length (output symbols of the first reference): Rouge-L / validity %",
        caption="share of prompts per bucket: "
        + ", ".join(f"{b} {cell((results.get('teacher') or {}).get(f'share@{b}'), 0, 100.0)}%" for b in buckets)
        if shares
        else None,
        padding=(0, 1),
    )
    table.add_column("Model", no_wrap=True)
    for b in buckets:
        table.add_column(b, justify="right")
    for name in names:
        if name not in results:
            continue
        row = results[name]
        table.add_row(
            SHORT.get(name, name),
            *(f"{cell(row.get(f'rouge_l@{b}'), 1)} / {cell(row.get(f'validity@{b}'), 1, 100.0)}" for b in buckets),
            style="italic dim" if name == "true_distribution" else None,
        )
    return table


def print_lengths_table(results: dict[str, Any], console: Console) -> None:
    table = lengths_table(results)
    if table is not None:
        console.print(table)
