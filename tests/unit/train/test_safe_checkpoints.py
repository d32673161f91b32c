"""Loading a run folder never executes code from it: minillm's own checkpoint state is JSON + safetensors, and
DeepSpeed's pickle files are read with ``weights_only=True`` and a small allowlist. The CLI tests plant a
pickle payload (an object whose ``__reduce__`` creates a marker file) in every file that resume and export
read, and check that the marker never appears and the command stops with a clear exit-5 panel."""

from __future__ import annotations

import math
import os
import pickle
import random
import shutil
from pathlib import Path

import pytest
import torch
from helpers import run_minillm

from minillm_distill.errors import ExitCode
from minillm_distill.safe_load import UnsafeCheckpointError, allowed_types, safe_torch_load
from minillm_distill.sampler import RolloutBatch
from minillm_distill.state_files import StateFileError, load_state, save_state
from minillm_distill.train.checkpoint import rng_state, set_rng_state
from minillm_distill.train.step import PhaseBuffer

RESUME = ("distill", "recipes/tiny/minillm.yaml", "--set", "train.total_steps=4", "--output-dir")
WIDE = {"COLUMNS": "400", "OMP_NUM_THREADS": "1"}  # panels unwrapped, so paths can be matched


class Payload:
    """Unpickling this creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(path: Path, marker: Path) -> None:
    """Replace ``path`` with a pickle that runs code when loaded (a torch.save file for .pt files)."""
    if path.suffix == ".pt":
        torch.save({"module": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


def _rollout(g: torch.Generator) -> RolloutBatch:
    ids = torch.randint(0, 50, (2, 5), generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    return RolloutBatch(
        prompt_ids=ids[:, :3],
        prompt_mask=torch.ones(2, 3, dtype=torch.long),
        response_ids=ids,
        response_mask=mask,
        behaviour_logprobs=torch.randn(2, 5, generator=g),
        teacher_logprobs=None,
        importance_weights=torch.rand(2, 5, generator=g, dtype=torch.float64),
        source="teacher_mixed",
        extras={"sampling_probs": torch.rand(2, 5, generator=g).to(torch.bfloat16), "student_lengths": (3, 5)},
    )


def test_phase_buffer_round_trips_every_field(tmp_path):
    g = torch.Generator().manual_seed(0)
    buf = PhaseBuffer(
        phase=3,
        rollouts=[_rollout(g), _rollout(g)],
        prepared=[{"advantages": torch.randn(2, 5, generator=g)}, {"advantages": torch.zeros(0)}],
        metrics={"reward": -0.25, "weight_max": math.inf, "nothing": math.nan},
    )
    save_state(buf, tmp_path / "p.json", tmp_path / "p.safetensors")
    back = load_state(tmp_path / "p.json", tmp_path / "p.safetensors")
    assert isinstance(back, PhaseBuffer) and back.phase == 3
    for a, b in zip(buf.rollouts, back.rollouts, strict=True):
        assert isinstance(b, RolloutBatch) and b.source == a.source and b.teacher_logprobs is None
        for name in ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "behaviour_logprobs"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and torch.equal(x, y), name
        assert b.importance_weights.dtype == torch.float64 and torch.equal(a.importance_weights, b.importance_weights)
        assert b.extras["sampling_probs"].dtype == torch.bfloat16
        assert torch.equal(a.extras["sampling_probs"], b.extras["sampling_probs"])
        assert b.extras["student_lengths"] == (3, 5)
    assert torch.equal(back.prepared[0]["advantages"], buf.prepared[0]["advantages"])
    assert back.prepared[1]["advantages"].shape == (0,)
    assert back.metrics["reward"] == -0.25 and back.metrics["weight_max"] == math.inf
    assert math.isnan(back.metrics["nothing"])
    assert b"pickle" not in (tmp_path / "p.json").read_bytes()


def test_state_files_refuse_what_they_cannot_write_or_read(tmp_path):
    with pytest.raises(TypeError, match="no pickle"):
        save_state({"x": object()}, tmp_path / "a.json", tmp_path / "a.safetensors")
    save_state({"x": 1}, tmp_path / "b.json", tmp_path / "b.safetensors")
    (tmp_path / "b.json").write_text('{"format": 1, "value": {"__dataclass__": "os.system", "fields": {}}}')
    with pytest.raises(StateFileError, match="cannot read the checkpoint state"):
        load_state(tmp_path / "b.json", tmp_path / "b.safetensors")


def test_rng_state_round_trips_through_state_files(tmp_path):
    torch.manual_seed(5)
    random.seed(7)
    save_state(rng_state(), tmp_path / "r.json", tmp_path / "r.safetensors")
    expected = (torch.rand(3), random.random())
    torch.manual_seed(0)
    random.seed(0)
    set_rng_state(load_state(tmp_path / "r.json", tmp_path / "r.safetensors"))
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


def test_safe_torch_load_refuses_code_and_allows_deepspeed_data(tmp_path):
    marker = tmp_path / "pwned"
    plant(tmp_path / "evil.pt", marker)
    with safe_torch_load(), pytest.raises(UnsafeCheckpointError, match="refused to load"):
        torch.load(tmp_path / "evil.pt", weights_only=False)  # what DeepSpeed passes: overridden
    assert not marker.exists()
    assert torch.load is not None and torch.load.__name__ == "load"  # restored
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    assert LossScaler in allowed_types() and ZeroStageEnum in allowed_types()
    torch.save({"scaler": LossScaler(scale=4), "stage": ZeroStageEnum(2), "w": torch.ones(2)}, tmp_path / "ok.pt")
    with safe_torch_load():
        back = torch.load(tmp_path / "ok.pt", weights_only=False)
    assert back["scaler"].cur_scale == 4 and back["stage"] == ZeroStageEnum(2) and torch.equal(back["w"], torch.ones(2))


@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory) -> Path:
    """A tiny MiniLLM run stopped after a checkpoint at step 2 (so it has a rollout buffer payload)."""
    run = tmp_path_factory.mktemp("safe") / "run"
    args = ("recipes/tiny/minillm.yaml", "--output-dir", run, "--set", "train.total_steps=4")
    res = run_minillm("distill", *args, "--set", "train.save_every=2", "--max-steps", "2", env={"OMP_NUM_THREADS": "1"})
    assert res.code == 0, res.output
    return run


def _files(run: Path) -> list[Path]:
    ck = run / "checkpoints" / "step-2"
    return sorted(p.relative_to(run) for p in ck.rglob("*") if p.is_file())


@pytest.mark.slow
def test_resume_and_export_never_run_code_planted_in_a_checkpoint(checkpointed_run, tmp_path):
    files = _files(checkpointed_run)
    names = {p.name for p in files}
    assert {"state.json", "rng-rank0.json", "rng-rank0.safetensors", "payload-rank0.json"} <= names, names
    assert any(n.endswith("_model_states.pt") for n in names), names
    assert not any(n.startswith(("rng-rank", "payload-rank")) and n.endswith(".pt") for n in names)
    read_by_export = [p for p in files if p.name.endswith("_model_states.pt")]
    for i, rel in enumerate(files):
        run = tmp_path / f"r{i}"
        shutil.copytree(checkpointed_run, run)
        marker = tmp_path / f"marker-{i}"
        plant(run / rel, marker)
        res = run_minillm(
            "distill",
            "recipes/tiny/minillm.yaml",
            "--output-dir",
            run,
            "--set",
            "train.total_steps=4",
            "--resume",
            env=WIDE,
        )
        assert not marker.exists(), f"code ran from {rel}"
        assert res.code == ExitCode.RESOURCE, (rel, res.output)
        assert "Traceback" not in res.output and str(rel.name) in res.output, (rel, res.output)
        if rel in read_by_export:
            res = run_minillm("export", run / "checkpoints" / "step-2", tmp_path / f"out{i}", env=WIDE)
            assert not marker.exists(), f"export ran code from {rel}"
            assert res.code == ExitCode.RESOURCE and "refused to load" in res.output, res.output
            assert "Traceback" not in res.output


@pytest.mark.slow
def test_a_checkpoint_with_pickle_state_files_is_refused_not_loaded(checkpointed_run, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(checkpointed_run, run)
    ck = run / "checkpoints" / "step-2"
    marker = tmp_path / "marker"
    for f in [*ck.glob("rng-rank*"), *ck.glob("payload-rank*")]:
        f.unlink()
    plant(ck / "rng-rank0.pt", marker)  # what an earlier minillm wrote (pickle)
    res = run_minillm(
        "distill",
        "recipes/tiny/minillm.yaml",
        "--output-dir",
        run,
        "--set",
        "train.total_steps=4",
        "--resume",
        env=WIDE,
    )
    assert not marker.exists()
    assert res.code == ExitCode.RESOURCE and "predates" in res.output, res.output
    assert "Traceback" not in res.output
    assert os.path.exists(ck / "rng-rank0.pt")  # left as it was
