"""What minillm itself writes into a checkpoint, without pickle: a JSON file for the structure and a
safetensors file for the tensors.

A value is encoded as a JSON tree: ``None``, booleans, numbers (``NaN``/``inf`` included), strings, lists and
string-keyed dicts as they are; a tuple as ``{"__tuple__": [...]}``; a tensor as ``{"__tensor__": KEY,
"device": ...}`` with its data under ``KEY`` in the safetensors file; a dataclass of :data:`DATACLASSES` as
``{"__dataclass__": NAME, "fields": {...}}``, every field walked the same way (so a field added to
``RolloutBatch`` is saved and restored with no change here). Reading rebuilds only those dataclasses, by name
from that fixed table: nothing in the files can name code to run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minillm_distill.errors import ResourceError
from minillm_distill.file_modes import as_umask_allows


def _dataclasses() -> dict[str, type]:
    from minillm_distill.rollout import PhaseBuffer, PromptBatch, RolloutBatch

    return {cls.__name__: cls for cls in (PhaseBuffer, RolloutBatch, PromptBatch)}


class StateFileError(ResourceError):
    """A checkpoint state file that cannot be read back (damaged, or not written by minillm)."""


def _encode(value: Any, tensors: dict[str, torch.Tensor], known: dict[str, type]) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key, "device": str(value.device)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, known) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors, known) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot save a dict with non-string keys: {list(value)[:3]}")
        if any(k.startswith("__") for k in value):
            raise TypeError(f"cannot save a dict whose keys start with '__': {sorted(value)[:3]}")
        return {k: _encode(v, tensors, known) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and type(value).__name__ in known:
        fields = {f.name: _encode(getattr(value, f.name), tensors, known) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__name__, "fields": fields}
    raise TypeError(f"cannot save a value of type {type(value).__qualname__} in a checkpoint (no pickle)")


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return device


def _decode(node: Any, tensors: dict[str, torch.Tensor], known: dict[str, type]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors, known) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]].to(_device(node.get("device", "cpu")))
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode(v, tensors, known) for v in node["__tuple__"])
    if "__dataclass__" in node:
        cls = known.get(node["__dataclass__"])
        if cls is None:
            raise ValueError(f"unknown record type {node['__dataclass__']!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: _decode(v, tensors, known) for k, v in node["fields"].items() if k in names}
        return cls(**fields)
    return {k: _decode(v, tensors, known) for k, v in node.items()}


def save_state(value: Any, json_path: Path, tensor_path: Path) -> None:
    """Write ``value`` as ``json_path`` (structure) + ``tensor_path`` (safetensors)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(value, tensors, _dataclasses())
    save_file(tensors, str(tensor_path))
    as_umask_allows(tensor_path)
    json_path.write_text(json.dumps({"format": 1, "value": tree}), encoding="utf-8")


def load_state(json_path: Path, tensor_path: Path) -> Any:
    """The value :func:`save_state` wrote; :class:`StateFileError` for files it did not write."""
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_path))
        if not isinstance(doc, dict) or doc.get("format") != 1:
            raise ValueError("not a minillm state file (format 1)")
        return _decode(doc["value"], tensors, _dataclasses())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise StateFileError(
            f"cannot read the checkpoint state {json_path.name} + {tensor_path.name} in {str(json_path.parent)!r}",
            why=f"{type(exc).__name__}: {exc}",
            hint="the checkpoint is damaged; resume from an earlier one (checkpoints/step-N) or start again",
        ) from exc
