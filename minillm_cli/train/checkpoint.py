"""Checkpoints written atomically: everything goes to ``checkpoints/.tmp-step-N`` first, which is renamed to
``step-N`` only once complete, and ``checkpoints/latest`` is replaced after that. A kill at any moment leaves
the previous checkpoint intact and loadable. Only the last ``keep_last`` checkpoints are kept."""

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

from minillm_cli.errors import ResourceError
from minillm_cli.io_errors import writing
from minillm_cli.train import distributed as dist_utils

STATE_FILE = "state.json"
ENGINE_TAG = "engine"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def _fails_cleanly(save: Callable[..., Path]) -> Callable[..., Path]:
    """A write that fails (full disk, read-only folder...) removes the partial ``.tmp-step-N`` and raises a
    ResourceError (exit 5) naming it; the previous checkpoint and ``latest`` are untouched. Under several
    processes the failing rank exits with 5 and the others are stopped by the launcher."""

    @wraps(save)
    def guarded(engine: Any, run_dir: Path, step: int, *args: Any, **kwargs: Any) -> Path:
        ck_root = Path(run_dir) / "checkpoints"
        previous = latest_checkpoint(Path(run_dir))
        keep = f"the previous checkpoint {previous.name} is intact" if previous else "no checkpoint was written yet"
        hint = (
            f"{keep}; free space on that disk (or set output.dir / --output-dir to another disk and copy the run "
            "there), then run the same command with --resume"
        )
        cleanup = [ck_root / f".tmp-step-{step}", ck_root / ".latest.tmp"]
        with writing(ck_root / f"step-{step}", f"checkpoint step-{step}", cleanup=cleanup, hint=hint):
            return save(engine, run_dir, step, *args, **kwargs)

    return guarded


@_fails_cleanly
def save_checkpoint(
    engine: Any, run_dir: Path, step: int, state: dict[str, Any], keep_last: int, rank_payload: Any = None
) -> Path:
    """Collective: every rank must call it. ``rank_payload`` (this rank's, e.g. a rollout buffer) is saved
    beside the engine state and comes back from :func:`load_rank_payload`."""
    ck_root = run_dir / "checkpoints"
    tmp = ck_root / f".tmp-step-{step}"
    final = ck_root / f"step-{step}"
    rank = dist_utils.rank()
    if rank == 0:
        ck_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist_utils.barrier()
    engine.save_checkpoint(str(tmp), tag=ENGINE_TAG, save_latest=False)
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank_payload is not None:
        torch.save(rank_payload, tmp / f"payload-rank{rank}.pt")
    dist_utils.barrier()
    if rank == 0:
        _write_atomic(tmp / STATE_FILE, json.dumps({"step": step, **state}, indent=2))
        if final.exists():
            old = ck_root / f".old-step-{step}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
        _write_atomic(ck_root / "latest", final.name + "\n")
        _prune(ck_root, keep_last, keep=final.name)
    dist_utils.barrier()
    return final


def _step_of(p: Path) -> int:
    return int(p.name.split("-", 1)[1])


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).exists()]
    return sorted(done, key=_step_of)


def _prune(ck_root: Path, keep_last: int, keep: str) -> None:
    done = list_checkpoints(ck_root.parent)
    for p in done[:-keep_last]:
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    for p in ck_root.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (``latest`` pointer first, else the highest complete step)."""
    root = run_dir / "checkpoints"
    pointer = root / "latest"
    if pointer.exists():
        cand = root / pointer.read_text(encoding="utf-8").strip()
        if (cand / STATE_FILE).exists():
            return cand
    done = list_checkpoints(run_dir)
    return done[-1] if done else None


def load_checkpoint(engine: Any, ck: Path) -> dict[str, Any]:
    """Restore engine (weights, optimizer, scheduler) and this rank's RNG; returns the saved state."""
    state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
    path, _ = engine.load_checkpoint(str(ck), tag=ENGINE_TAG, load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise ResourceError(f"checkpoint {ck} could not be loaded by DeepSpeed", hint="is it from this recipe?")
    rng_file = ck / f"rng-rank{dist_utils.rank()}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return state


def load_rank_payload(ck: Path) -> Any:
    """This rank's payload saved with the checkpoint, or None."""
    f = ck / f"payload-rank{dist_utils.rank()}.pt"
    return torch.load(f, weights_only=False) if f.exists() else None
