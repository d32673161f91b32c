"""Writing evaluation outputs and the Rich table.

Layout (``DIR`` = ``--output-dir``, ``NAME`` = the benchmark):

* one model: ``DIR/NAME/predictions.jsonl`` and ``DIR/NAME/scores.json``;
* several models: the same two files in ``DIR/NAME/<label>/`` for each model (``label``: the model folder's
  name, made unique), and ``DIR/NAME/comparison.json`` with every model's scores side by side.

``predictions.jsonl``: one line per prompt and seed: ``id``, ``seed``, ``prompt``, ``prediction``,
``references``, ``length``, ``rougeL``, ``exact_match`` (and ``metadata`` when the benchmark has some).
``scores.json``: ``rougeL``, ``exact_match``, ``mean_length`` (means over seeds) with ``*_std``, ``per_seed``,
``n``, ``seeds``, ``rougeL_by_reference_length``, ``settings``, and ``calibration`` / ``exposure_bias`` when
measured. Files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from minillm_distill.eval.labels import model_labels as model_labels  # re-exported: labels live there
from minillm_distill.eval.runner import ModelScores, Prediction
from minillm_distill.io_errors import writing

HINT = (
    "free space on that disk or choose another output folder, then run the command again "
    "(a training run whose periodic eval failed continues with --resume)"
)


def atomic_write(path: Path, text: str) -> None:
    """A failed write (full disk, read-only folder) removes the ``.partial`` file: exit 5 naming ``path``."""
    partial = path.with_name(path.name + ".partial")
    with writing(path, "evaluation output", cleanup=[partial], hint=HINT):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN/inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def result_dir(output_dir: Path, benchmark: str, label: str, n_models: int) -> Path:
    base = output_dir / benchmark
    return base if n_models == 1 else base / label


def write_model_outputs(directory: Path, scores: ModelScores, predictions: Sequence[Prediction]) -> None:
    lines = [json.dumps(json_safe(p.as_dict()), ensure_ascii=False) for p in predictions]
    atomic_write(directory / "predictions.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    atomic_write(
        directory / "scores.json", json.dumps(json_safe(scores.as_dict()), indent=2, ensure_ascii=False) + "\n"
    )


def write_comparison(output_dir: Path, benchmark: str, all_scores: Sequence[ModelScores]) -> Path:
    path = output_dir / benchmark / "comparison.json"
    payload = {"benchmark": benchmark, "models": [s.as_dict() for s in all_scores]}
    atomic_write(path, json.dumps(json_safe(payload), indent=2, ensure_ascii=False) + "\n")
    return path


def _fmt(value: float | None, spread: float | None = None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    text = f"{value:.{digits}f}"
    if spread:
        text += f" ± {spread:.{digits}f}"
    return text


def scores_table(benchmark: str, all_scores: Sequence[ModelScores]) -> Table:
    """Metrics as rows, models as columns (side by side)."""
    table = Table(title=f"minillm eval: {benchmark}", title_justify="left")
    table.add_column("metric")
    for scores in all_scores:
        table.add_column(scores.label, justify="right")
    seeds = all_scores[0].seeds if all_scores else []
    rows: list[tuple[str, list[str]]] = [
        ("Rouge-L (x100)", [_fmt(s.rouge_l, s.rouge_l_std) for s in all_scores]),
        ("Exact match (%)", [_fmt(s.exact_match, s.exact_match_std) for s in all_scores]),
        ("Mean length (tokens)", [_fmt(s.mean_length, s.mean_length_std, 1) for s in all_scores]),
    ]
    names = list(all_scores[0].rouge_l_by_reference_length) if all_scores else []
    for name in names:
        cells = []
        for s in all_scores:
            bucket = s.rouge_l_by_reference_length.get(name, {})
            cells.append(f"{_fmt(bucket.get('rougeL'))} (n={bucket.get('n', 0)})" if bucket.get("n") else "-")
        rows.append((f"Rouge-L (x100), reference {name} words", cells))
    if any("calibration" in s.extra for s in all_scores):
        rows.append(
            ("Next-token accuracy (%)", [_fmt(s.extra.get("calibration", {}).get("accuracy")) for s in all_scores])
        )
        rows.append(("ECE (0-1)", [_fmt(s.extra.get("calibration", {}).get("ece"), digits=3) for s in all_scores]))
    if any("exposure_bias" in s.extra for s in all_scores):
        cells = []
        for s in all_scores:
            curve = s.extra.get("exposure_bias") or {}
            lengths, values = curve.get("lengths") or [], curve.get("exaccerr") or []
            cells.append(f"{_fmt(values[-1], digits=1)} (l={lengths[-1]})" if lengths else "-")
        rows.append(("ExAccErr vs teacher (%)", cells))
    rows.append(("Examples", [str(s.n) for s in all_scores]))
    for metric, cells in rows:
        table.add_row(metric, *cells)
    table.caption = f"mean ± std over seeds {', '.join(map(str, seeds))}"
    return table
