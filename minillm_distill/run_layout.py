"""The layout of a run folder: what ``minillm distill`` writes, and what ``--resume``, ``minillm export``,
``minillm eval`` and the pipelines read. One home for the names, so writer and readers cannot drift apart.

::

    RUN/
      recipe.yaml              the resolved recipe (plugin defaults included)
      metrics.jsonl            one JSON object per optimizer step
      trackers.json            the experiment trackers' run ids (--resume continues them)
      checkpoints/
        latest                 the name of the newest complete checkpoint (written last)
        step-N/                a complete checkpoint (renamed from .tmp-step-N once written)
          state.json           step, sampler state, data position
          engine/              DeepSpeed's engine state (its tag)
          rng-rankR.*, payload-rankR.*   each rank's RNG states and rollout buffer (JSON + safetensors)
        .tmp-step-N/           a checkpoint being written (never read; removed on the next run)
      final/                   the trained student as a Hugging Face folder, once total_steps is reached
      eval/step-N/BENCH/       evaluations during training
"""

from __future__ import annotations

from pathlib import Path

from minillm_distill.errors import ResourceError

RECIPE = "recipe.yaml"
METRICS = "metrics.jsonl"
TRACKERS = "trackers.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE_FILE = "state.json"
ENGINE_TAG = "engine"
FINAL = "final"
EVAL = "eval"
STEP_PREFIX = "step-"
TMP_PREFIX = ".tmp-step-"


def checkpoint_name(step: int) -> str:
    """``step-N``: the folder of the checkpoint after optimizer step ``step``."""
    return f"{STEP_PREFIX}{step}"


def temporary_checkpoint_name(step: int) -> str:
    """``.tmp-step-N``: where checkpoint ``step-N`` is written before it is renamed into place."""
    return f"{TMP_PREFIX}{step}"


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def step_of(name: str) -> int | None:
    """N for a checkpoint folder named ``step-N`` (N digits only), else None: a run folder is input like any
    other, and a folder named ``step-abc`` or ``step-..`` beside the real ones is not a checkpoint."""
    digits = name[len(STEP_PREFIX) :] if name.startswith(STEP_PREFIX) else ""
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's complete checkpoints (a ``step-N`` folder with its ``state.json``), oldest first; folders whose
    name is not ``step-`` and digits are ignored."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    done = [
        p
        for p in root.glob(f"{STEP_PREFIX}*")
        if step_of(p.name) is not None and p.is_dir() and (p / STATE_FILE).exists()
    ]
    return sorted(done, key=lambda p: step_of(p.name) or 0)


def inside(run_dir: str | Path, path: str | Path, what: str) -> Path:
    """``path`` when it stays in the run folder; a symbolic link (of the file or a folder on its way) that leads
    out of ``run_dir`` is refused (ResourceError, exit 5). minillm reads and writes a run folder through this, so
    a copied run folder cannot make it read another file into a model card, write over a file elsewhere, or
    resume another run's checkpoint."""
    root, p = Path(run_dir).resolve(), Path(path)
    target = p.resolve()
    if target != root and root not in target.parents:
        raise ResourceError(
            f"{what} {str(p)!r} leads out of the run folder {str(run_dir)!r} (to {str(target)!r})",
            why="it is a symbolic link, or a folder on its way is; minillm never follows a run folder's links "
            "to files outside it",
            hint="replace the link with the file itself (cp --dereference), or use a run folder without such links",
        )
    return p


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (``latest`` pointer first, else the highest complete step); a pointer or
    a checkpoint folder leading out of the run folder is refused (:func:`inside`)."""
    root = checkpoints_dir(run_dir)
    pointer = root / LATEST
    if pointer.exists():
        inside(run_dir, pointer, "checkpoints/latest")
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""  # an unreadable pointer: the highest complete step below
        if name and "\x00" not in name:
            inside(run_dir, root / name, "the checkpoint checkpoints/latest names,")  # never another run's
        if step_of(name) is not None and (root / name / STATE_FILE).exists():
            return root / name
    done = list_checkpoints(run_dir)
    return inside(run_dir, done[-1], "checkpoint") if done else None


def resume_command(argv: list[str], run_dir: str | Path | None) -> str:
    """The ``minillm`` command that continues a run: the one given (``argv``, after ``minillm``) with
    ``--resume`` and, when it did not say so, ``--output-dir RUN``."""
    import shlex

    again = [*argv]
    if "--resume" not in again:
        again.append("--resume")
    if run_dir is not None and not any(a == "--output-dir" or a.startswith("--output-dir=") for a in again):
        again += ["--output-dir", str(run_dir)]
    return shlex.join(["minillm", *again])
