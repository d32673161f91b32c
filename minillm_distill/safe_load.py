"""Reading the files DeepSpeed writes into a checkpoint without letting them run code.

DeepSpeed saves its model and optimizer states with ``torch.save`` (pickle) and reads them back with
``torch.load(..., weights_only=False)`` — in ``engine.load_checkpoint`` (resume) and in
``deepspeed.utils.zero_to_fp32`` (export of ZeRO-3 shards) — which would run whatever a planted file asks.
Inside :func:`safe_torch_load` every ``torch.load`` call, DeepSpeed's included, is made with
``weights_only=True``: only tensors, containers and plain values are rebuilt, plus the few plain-data
DeepSpeed types listed in :data:`DEEPSPEED_TYPES` (found in real checkpoints of every ZeRO stage, bf16 and
LoRA with ``torch.serialization.get_unsafe_globals_in_checkpoint``). Anything else in a file is refused
with :class:`UnsafeCheckpointError` naming the file and what it asked for.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import pickle
from collections.abc import Iterator
from typing import Any

import torch

from minillm_distill.errors import ResourceError

# (module, attribute): what DeepSpeed 0.19 puts in its optimizer states besides tensors and containers.
DEEPSPEED_TYPES: tuple[tuple[str, str], ...] = (
    # the optimizer's loss scaler (fp32/bf16: LossScaler; fp16: DynamicLossScaler): numbers only
    ("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),
    ("deepspeed.runtime.fp16.loss_scaler", "DynamicLossScaler"),
    # the ZeRO stage, an IntEnum
    ("deepspeed.runtime.zero.config", "ZeroStageEnum"),
    # a dataclass (numel, start) in the ZeRO-1/2 parameter slice mappings
    ("deepspeed.utils.tensor_fragment", "fragment_address"),
)


class UnsafeCheckpointError(ResourceError):
    """A checkpoint file holds something other than tensors and plain data: it is not loaded."""


def allowed_types() -> list[type]:
    out = []
    for module, name in DEEPSPEED_TYPES:
        try:
            out.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue  # another DeepSpeed release: what it does not define cannot be in its files
    return out


def _refusal(path: Any, exc: Exception) -> UnsafeCheckpointError:
    reason = str(exc).split("\n\n")[0].replace("Weights only load failed. ", "").strip()
    return UnsafeCheckpointError(
        f"refused to load {str(path)!r}: it holds more than tensors and plain data",
        why=f"loading it would have to run code from the file ({reason[:300]})",
        hint="minillm never unpickles run folders; use a checkpoint written by minillm distill, from a source you "
        "trust, or start the run again",
    )


@contextlib.contextmanager
def safe_torch_load() -> Iterator[None]:
    """Within the block, ``torch.load`` (also when DeepSpeed calls it) runs with ``weights_only=True`` and the
    DeepSpeed allowlist; a file that needs anything else raises :class:`UnsafeCheckpointError`."""
    original = torch.load

    @functools.wraps(original)
    def guarded(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            return original(f, *args, **kwargs)
        except pickle.UnpicklingError as exc:
            raise _refusal(f, exc) from exc

    with torch.serialization.safe_globals(allowed_types()):
        torch.load = guarded
        try:
            yield
        finally:
            torch.load = original
