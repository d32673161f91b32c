"""Labels of the models in an eval table and its output folders: stable, unique, overridable.

``--model PATH=LABEL`` sets a label. Otherwise a model folder written by minillm is labelled by its run name
(the ``# NAME (step N)`` heading of its model card, or ``name`` in ``minillm_recipe.yaml``), a folder named
``final`` by its parent (the run folder), anything else by its folder name. Labels that collide get their
parent's name, then a counter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from minillm_distill.errors import UsageError

_CARD_HEADING = re.compile(r"^# (\S.*?) \(step \d+\)\s*$", re.MULTILINE)
GENERIC_FOLDERS = frozenset({"final", "model", "hf", "export"})


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


def split_model_arg(value: str) -> tuple[str, str | None]:
    """``PATH=LABEL`` -> ``(PATH, LABEL)``; a plain path (or an existing one with ``=`` in it) -> ``(value, None)``."""
    path, sep, label = value.rpartition("=")
    if not sep or Path(value).expanduser().exists():
        return value, None
    if not path or not label.strip():
        raise UsageError(f"--model {value!r}: give PATH=LABEL with both parts", hint="e.g. --model runs/a/final=kd")
    return path, label.strip()


def run_name(path: str) -> str | None:
    """The run name a minillm-written model folder records, if any."""
    folder = Path(path).expanduser()
    card = folder / "README.md"
    if card.is_file():
        match = _CARD_HEADING.search(card.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
    recipe = folder / "minillm_recipe.yaml"
    if recipe.is_file():
        match = re.search(r"^name:\s*['\"]?([^'\"#\n]+?)['\"]?\s*(#.*)?$", recipe.read_text(encoding="utf-8"), re.M)
        if match:
            return match.group(1)
    return None


def default_label(path: str) -> str:
    parts = Path(path.rstrip("/\\")).parts or (path,)
    name = run_name(path)
    if name:
        return _safe(name)
    if parts[-1] in GENERIC_FOLDERS and len(parts) > 1:
        return _safe(parts[-2])
    return _safe(parts[-1])


def model_labels(models: Sequence[str], explicit: Sequence[str | None] | None = None) -> list[str]:
    """One unique label per model; ``explicit`` labels (``PATH=LABEL``) are kept and must be unique."""
    explicit = list(explicit) if explicit is not None else [None] * len(models)
    given = [e for e in explicit if e is not None]
    if len(set(given)) != len(given):
        dup = next(e for e in given if given.count(e) > 1)
        raise UsageError(f"label {dup!r} is given to two models", hint="give each --model PATH=LABEL its own label")
    labels = [_safe(e) if e is not None else default_label(m) for m, e in zip(models, explicit, strict=True)]
    first = list(labels)
    for i, label in enumerate(first):
        parts = Path(models[i].rstrip("/\\")).parts
        if explicit[i] is None and first.count(label) > 1 and len(parts) > 1:
            parent = parts[-3] if parts[-1] in GENERIC_FOLDERS and len(parts) > 2 else parts[-2]
            if _safe(parent) != label:
                labels[i] = _safe(f"{parent}-{label}")
    seen: dict[str, int] = {}
    unique = []
    for i, label in enumerate(labels):
        if labels.count(label) == 1 or explicit[i] is not None:
            unique.append(label)
            continue
        seen[label] = seen.get(label, 0) + 1
        unique.append(f"{label}-{seen[label]}")
    return unique
