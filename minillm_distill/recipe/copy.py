"""``minillm recipes copy NAME DIR``: a shipped recipe and the local data files it names, into a folder.

Relative data paths in a recipe are relative to the recipe's own folder, so a recipe copied alone breaks; the
copy keeps the same relative layout (``DIR/kd.yaml`` and ``DIR/data/instructions.jsonl``), so the paths stay valid
whatever the working directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePath

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.recipe.shipped import shipped_recipe
from minillm_distill.recipe.yaml_io import load_yaml


def local_data_paths(recipe_file: Path) -> list[str]:
    """The recipe's data paths (``data.train``, ``data.valid``, ``data.pretrain.path``) that name a file or
    folder beside it, as written (relative)."""
    data = load_yaml(recipe_file.read_text(encoding="utf-8"))
    section = data.get("data") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return []
    values = [section.get("train"), section.get("valid")]
    if isinstance(section.get("pretrain"), dict):
        values.append(section["pretrain"].get("path"))
    found = []
    for value in values:
        if isinstance(value, str) and not PurePath(value).is_absolute() and (recipe_file.parent / value).exists():
            found.append(value)
    return found


def copy_recipe(name: str, directory: Path, *, force: bool = False) -> list[Path]:
    """Copy shipped recipe ``name`` and its local data into ``directory``; return the files written."""
    source = shipped_recipe(name)
    base = source.parent.resolve()
    plan: list[tuple[Path, Path]] = [(source, directory / source.name)]
    for rel in local_data_paths(source):
        src = (base / rel).resolve()
        if not src.is_relative_to(base):
            raise UsageError(f"recipe {name!r}: data path {rel!r} is outside the recipe's folder; copy it by hand")
        plan.append((src, directory / rel))
    existing = [str(dst) for _, dst in plan if dst.exists()]
    if existing and not force:
        raise UsageError(
            f"{existing[0]} already exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""),
            hint="choose another folder, or pass --force to overwrite",
        )
    written = []
    try:
        for src, dst in plan:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dst)
            written.append(dst)
    except OSError as exc:
        raise ResourceError(f"cannot copy recipe {name!r} into {directory}", why=str(exc)) from exc
    return written
