"""Depth pruning: a student cut from its teacher by keeping some of its transformer blocks.

The embeddings, the final norm and the output head are kept as they are; the kept blocks keep their weights
and are renumbered (``layer_idx``, which indexes the KV cache), and the config says the new depth. Keeping
every block gives back the teacher exactly. This is how Minitron-style pipelines start a student: close to the
teacher in function before any training, with the teacher's tokenizer by construction.

``minillm models cut SOURCE OUT --layers 0,4,8`` (or ``--every 3``, or ``--first 5 --last 6``) writes the cut
as an ordinary Hugging Face folder; :func:`cut_model` does it in memory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from minillm_distill.errors import UsageError
from minillm_distill.file_modes import as_umask_allows

DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
"""Config attributes that hold the number of blocks, across architectures."""
PER_LAYER_KEYS = ("layer_types",)
"""Config lists with one entry per block (kept in step with the blocks)."""
CUT_FILE = "minillm-cut.json"
"""Written into a cut's folder: the source, the blocks kept and the source's depth."""


def depth(config: Any) -> int:
    for key in DEPTH_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise UsageError(
        f"the model's config ({type(config).__name__}) names no number of layers ({', '.join(DEPTH_KEYS)})",
        hint="depth pruning works on decoder stacks whose config says how many blocks they have",
    )


def blocks(model: Any) -> torch.nn.ModuleList:
    """The model's list of transformer blocks: the one ``ModuleList`` as long as the config's depth."""
    n = depth(model.config)
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if len(lists) != 1:
        raise UsageError(
            f"cannot tell which module list holds the {n} blocks of {type(model).__name__} ({len(lists)} candidates)",
            hint="depth pruning supports decoder-only models with one stack of blocks (GPT-2, LLaMA, Qwen2, ...)",
        )
    return lists[0]


def choose_layers(
    total: int,
    *,
    layers: Sequence[int] | None = None,
    every: int | None = None,
    ends: tuple[int, int] | None = None,
) -> list[int]:
    """The 0-based blocks to keep: ``layers`` as given (sorted, each once); every ``every``-th block starting
    with the first and always ending with the last (the last block writes what the output head reads); or
    ``ends = (first, last)``: the first ``first`` and the last ``last`` blocks (the deep middle dropped)."""
    if sum(x is not None for x in (layers, every, ends)) != 1:
        raise UsageError("give the blocks to keep as a list of layers, every k-th layer, or the first and last blocks")
    if ends is not None:
        first, last = ends
        if first < 0 or last < 0 or first + last < 1:
            raise UsageError(f"keep at least one block (first {first}, last {last})")
        if first + last >= total:
            return list(range(total))
        return [*range(first), *range(total - last, total)]
    if every is not None:
        if every < 1:
            raise UsageError(f"every k-th layer needs k >= 1 (got {every})")
        keep = list(range(0, total, every))
        if keep[-1] != total - 1:
            keep.append(total - 1)
        return keep
    assert layers is not None
    keep = sorted(set(layers))
    if not keep:
        raise UsageError("keep at least one layer")
    bad = [i for i in keep if not 0 <= i < total]
    if bad:
        raise UsageError(f"layers {bad} do not exist: the model has layers 0..{total - 1}")
    return keep


def parse_layers(text: str) -> list[int]:
    """``"0,4,8"`` or ``"0-3,10"`` -> ``[0, 4, 8]`` / ``[0, 1, 2, 3, 10]``."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise UsageError(
            f"--layers {text!r} is not a list of layer numbers", hint="e.g. --layers 0,4,8 or 0-5,29"
        ) from None
    return out


def cut_model(model: Any, keep: Sequence[int]) -> Any:
    """Keep only the blocks ``keep`` (0-based, ascending) of ``model``, in place; returns the model."""
    stack = blocks(model)
    total = len(stack)
    keep = choose_layers(total, layers=keep)
    kept = torch.nn.ModuleList([stack[i] for i in keep])
    for new_index, block in enumerate(kept):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_index
    parent_name, _, attr = _name_of(model, stack).rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, kept)
    config = model.config
    for key in DEPTH_KEYS:
        if isinstance(getattr(config, key, None), int):
            setattr(config, key, len(keep))
    for key in PER_LAYER_KEYS:
        values = getattr(config, key, None)
        if isinstance(values, list) and len(values) == total:
            setattr(config, key, [values[i] for i in keep])
    return model


def _name_of(model: Any, target: torch.nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise AssertionError("the block list is not a submodule of the model")


def write_cut(
    source: str,
    out: Path,
    *,
    layers: Sequence[int] | None = None,
    every: int | None = None,
    ends: tuple[int, int] | None = None,
) -> list[int]:
    """Load ``source`` (a model folder, hub id or GGUF file), cut it and save it to ``out`` (absent or empty) as a
    Hugging Face folder with its tokenizer and prompt format; returns the kept layers."""
    from transformers.utils import logging as hf_logging

    from minillm_distill.data.prompt_format import read_prompt_format, write_prompt_format
    from minillm_distill.io_errors import writing
    from minillm_distill.models import load_model, spec_source
    from minillm_distill.recipe.schema import ModelSpec

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder", hint="choose another output folder")
    hf_logging.disable_progress_bar()
    spec = ModelSpec(path=source)
    folder = spec_source(spec)
    loaded = load_model(spec, dtype=torch.float32)
    depth_before = depth(loaded.model.config)
    keep = choose_layers(depth_before, layers=layers, every=every, ends=ends)
    model = cut_model(loaded.model, keep)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with writing(out, "the cut student", cleanup=[tmp], hint="free space on that disk or choose another folder"):
        model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        setting = read_prompt_format(folder) if Path(folder).is_dir() else None
        if setting is not None:
            write_prompt_format(tmp, setting)
        record = {"source": source, "blocks_kept": keep, "of": depth_before}
        (tmp / CUT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        as_umask_allows(tmp)
        if out.exists():
            out.rmdir()
        tmp.replace(out)
    return keep
