"""Checkpoints written atomically: everything goes to ``checkpoints/.tmp-step-N`` first, which is renamed to
``step-N`` only once complete, and ``checkpoints/latest`` is replaced after that. A kill at any moment leaves
the previous checkpoint intact and loadable. Only the last ``keep_last`` checkpoints are kept.

Nothing in a checkpoint is unpickled on resume: what minillm writes (each rank's RNG states and payload, e.g.
the rollout buffer) is JSON + safetensors (:mod:`minillm_distill.state_files`), and DeepSpeed's own files
are read under :func:`minillm_distill.safe_load.safe_torch_load` (``weights_only=True`` with a small allowlist).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import torch

from minillm_distill.errors import ResourceError
from minillm_distill.io_errors import writing
from minillm_distill.run_layout import (  # latest_checkpoint, list_checkpoints: read here by the loop and tests
    CHECKPOINTS,
    ENGINE_TAG,
    LATEST,
    STATE_FILE,
    TMP_PREFIX,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    step_of,
    temporary_checkpoint_name,
)
from minillm_distill.safe_load import safe_torch_load
from minillm_distill.state_files import load_state, save_state
from minillm_distill.train import distributed as dist_utils


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# pickle files of earlier minillm versions: recognised, never loaded
LEGACY_FILES = ("rng-rank*.pt", "payload-rank*.pt")


def _rank_files(ck: Path, kind: str, rank: int) -> tuple[Path, Path]:
    return ck / f"{kind}-rank{rank}.json", ck / f"{kind}-rank{rank}.safetensors"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


def _fails_cleanly(save: Callable[..., Path]) -> Callable[..., Path]:
    """A write that fails (full disk, read-only folder...) removes the partial ``.tmp-step-N`` and raises a
    ResourceError (exit 5) naming it; the previous checkpoint and ``latest`` are untouched. Under several
    processes the failing rank exits with 5 and the others are stopped by the launcher."""

    @wraps(save)
    def guarded(engine: Any, run_dir: Path, step: int, *args: Any, **kwargs: Any) -> Path:
        ck_root = Path(run_dir) / CHECKPOINTS
        previous = latest_checkpoint(Path(run_dir))
        keep = f"the previous checkpoint {previous.name} is intact" if previous else "no checkpoint was written yet"
        hint = (
            f"{keep}; free space on that disk (or set output.dir / --output-dir to another disk and copy the run "
            "there), then run the same command with --resume"
        )
        cleanup = [ck_root / temporary_checkpoint_name(step), ck_root / ".latest.tmp"]
        with writing(
            ck_root / checkpoint_name(step), f"checkpoint {checkpoint_name(step)}", cleanup=cleanup, hint=hint
        ):
            return save(engine, run_dir, step, *args, **kwargs)

    return guarded


@_fails_cleanly
def save_checkpoint(
    engine: Any, run_dir: Path, step: int, state: dict[str, Any], keep_last: int, rank_payload: Any = None
) -> Path:
    """Collective: every rank must call it. ``rank_payload`` (this rank's, e.g. a rollout buffer) is saved
    beside the engine state and comes back from :func:`load_rank_payload`."""
    ck_root = run_dir / CHECKPOINTS
    tmp = ck_root / temporary_checkpoint_name(step)
    final = ck_root / checkpoint_name(step)
    rank = dist_utils.rank()
    if rank == 0:
        ck_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist_utils.barrier()
    engine.save_checkpoint(str(tmp), tag=ENGINE_TAG, save_latest=False)
    save_state(rng_state(), *_rank_files(tmp, "rng", rank))
    if rank_payload is not None:
        save_state(rank_payload, *_rank_files(tmp, "payload", rank))
    dist_utils.barrier()
    if rank == 0:
        _write_atomic(tmp / STATE_FILE, json.dumps({"step": step, **state}, indent=2))
        if final.exists():
            old = ck_root / f".old-step-{step}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
        _write_atomic(ck_root / LATEST, final.name + "\n")
        _prune(ck_root, keep_last, keep=final.name)
    dist_utils.barrier()
    return final


def weights_finite(engine: Any, device: Any) -> bool:
    """Whether every weight of the engine's model is finite, on every rank (a ZeRO-3 rank checks its own
    partition). A checkpoint is never written with non-finite weights, so it never replaces a finite one."""
    local = 0.0
    for p in engine.module.parameters():
        data = getattr(p, "ds_tensor", None)
        data = p.data if data is None else data
        if data.numel() and not bool(torch.isfinite(data).all()):
            local = 1.0
            break
    (bad,) = dist_utils.all_reduce_max([local], device)
    return bad == 0.0


def _prune(ck_root: Path, keep_last: int, keep: str) -> None:
    done = list_checkpoints(ck_root.parent)
    for p in done[:-keep_last]:
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    remove_partial_checkpoints(ck_root.parent)


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Remove what an interrupted save leaves in ``run_dir/checkpoints`` (``.tmp-step-N``, ``.latest.tmp``).
    Only safe when no process is writing there: after a save, or once every worker has stopped."""
    ck_root = Path(run_dir) / CHECKPOINTS
    for p in ck_root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
    (ck_root / ".latest.tmp").unlink(missing_ok=True)


def load_checkpoint(engine: Any, ck: Path) -> dict[str, Any]:
    """Restore engine (weights, optimizer, scheduler) and this rank's RNG; returns the saved state."""
    try:
        state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        step = state.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f'its "step" is {step!r}, not a step number')
        named = step_of(ck.name)
        if named is not None and named != step:
            raise ValueError(f'its "step" is {step} but the folder is {ck.name}')
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResourceError(
            f"cannot read {str(ck / STATE_FILE)!r}",
            why=f"{type(exc).__name__}: {exc}",
            hint="the checkpoint is damaged; resume from an earlier one (checkpoints/step-N) or start again",
        ) from exc
    check_format(ck)
    with safe_torch_load():
        path, _ = engine.load_checkpoint(
            str(ck), tag=ENGINE_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
    if path is None:
        raise ResourceError(f"checkpoint {ck} could not be loaded by DeepSpeed", hint="is it from this recipe?")
    rng_json, rng_tensors = _rank_files(ck, "rng", dist_utils.rank())
    if rng_json.exists():
        set_rng_state(load_state(rng_json, rng_tensors))
    return state


def check_format(ck: Path) -> None:
    """A checkpoint written by a minillm before the safe format (pickle files) is refused, never unpickled."""
    legacy = sorted(p.name for pattern in LEGACY_FILES for p in ck.glob(pattern))
    if legacy and not any(ck.glob("rng-rank*.json")):
        raise ResourceError(
            f"checkpoint {str(ck)!r} predates minillm's safe checkpoint format",
            why=f"it stores minillm's own state as pickle files ({', '.join(legacy[:3])}), which are never loaded "
            "because unpickling a file can run code from it",
            hint="start the run again with this minillm version; `minillm export` still turns the checkpoint's "
            "weights into a model folder",
        )


def load_rank_payload(ck: Path) -> Any:
    """This rank's payload saved with the checkpoint, or None."""
    json_path, tensor_path = _rank_files(ck, "payload", dist_utils.rank())
    return load_state(json_path, tensor_path) if json_path.exists() else None
