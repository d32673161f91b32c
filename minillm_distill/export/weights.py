"""The student's weights of one checkpoint: the full module ``state_dict`` (ZeRO 0-2) or DeepSpeed's
consolidation of the per-rank partitions (ZeRO-3), read with ``weights_only=True`` and an allowlist."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import torch

from minillm_distill.errors import ResourceError
from minillm_distill.export.run import ENGINE_TAG, Checkpoint
from minillm_distill.safe_load import UnsafeCheckpointError, safe_torch_load

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FULL_MODEL_STATES = "mp_rank_00_model_states.pt"


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """DeepSpeed's consolidation prints progress to stdout and stderr; keep the CLI output clean."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield sink


def checkpoint_weights(ck: Checkpoint, dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], str]:
    """The full ``state_dict`` of the student at that step, cast to ``dtype``; and where it came from."""
    engine_dir = ck.path / ENGINE_TAG
    full = engine_dir / FULL_MODEL_STATES
    if full.exists():
        try:
            with safe_torch_load():
                try:
                    states = torch.load(full, map_location="cpu", mmap=True)
                except RuntimeError:  # a file in the legacy (non-zip) format cannot be memory-mapped
                    states = torch.load(full, map_location="cpu")
        except UnsafeCheckpointError:
            raise
        except Exception as exc:  # torch.load raises many types for a damaged file
            raise ResourceError(f"cannot read {str(full)!r}", why=f"{type(exc).__name__}: {exc}") from exc
        module = states.get("module") if isinstance(states, dict) else None
        if not isinstance(module, dict) or not module:
            raise ResourceError(f"{str(full)!r} holds no module weights", hint="was it written by `minillm distill`?")
        return {k: _cast(v, dtype) for k, v in module.items()}, "module"
    if not any(engine_dir.glob("*_optim_states.pt")):
        raise ResourceError(
            f"no DeepSpeed weights in {str(engine_dir)!r}",
            why=f"expected {FULL_MODEL_STATES} (ZeRO 0-2) or *_model_states.pt + *_optim_states.pt files (ZeRO-3)",
        )
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    try:
        with _quiet(), safe_torch_load():
            lazy = get_fp32_state_dict_from_zero_checkpoint(str(ck.path), tag=ENGINE_TAG, lazy_mode=True)
            # one tensor at a time (the lazy tensors gather their partitions on .contiguous()); aliases of a
            # shared parameter stay one tensor
            out: dict[str, torch.Tensor] = {}
            seen: dict[int, str] = {}
            for name, lazy_tensor in lazy.items():
                if id(lazy_tensor) in seen:
                    out[name] = out[seen[id(lazy_tensor)]]
                    continue
                seen[id(lazy_tensor)] = name
                out[name] = _cast(lazy_tensor.contiguous(), dtype)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        raise ResourceError(
            f"cannot consolidate the ZeRO partitions in {str(engine_dir)!r}",
            why=f"{type(exc).__name__}: {exc}",
            hint="every rank's *_model_states.pt and *_optim_states.pt file must be present",
        ) from exc
    return out, "zero_to_fp32"


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor.clone() if not tensor.is_contiguous() else tensor
