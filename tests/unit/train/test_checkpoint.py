"""Checkpoint atomicity without DeepSpeed: a fake engine that writes files like DeepSpeed does."""

from __future__ import annotations

import json

import pytest
import torch
from run_folders import FakeEngine

from minillm_distill.train import checkpoint as ckpt


def test_interrupted_write_leaves_previous_checkpoint_loadable(tmp_path):
    ckpt.save_checkpoint(FakeEngine(), tmp_path, 2, {"sampler": {"n": 1}}, keep_last=3)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(FakeEngine(fail_at=4), tmp_path, 4, {"sampler": {"n": 2}}, keep_last=3)
    assert not (tmp_path / "checkpoints" / ".tmp-step-4").exists()  # an interrupt removes its partial write
    (tmp_path / "checkpoints" / ".tmp-step-4" / "engine").mkdir(parents=True)  # what a SIGKILL would leave
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-2"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-2"]
    engine = FakeEngine()
    state = ckpt.load_checkpoint(engine, latest)
    assert state["step"] == 2 and state["sampler"] == {"n": 1}
    assert engine.loaded.endswith("step-2/engine")


def test_pointer_to_incomplete_dir_falls_back_to_newest_complete(tmp_path):
    ckpt.save_checkpoint(FakeEngine(), tmp_path, 1, {}, keep_last=5)
    ckpt.save_checkpoint(FakeEngine(), tmp_path, 3, {}, keep_last=5)
    (tmp_path / "checkpoints" / "step-3" / ckpt.STATE_FILE).unlink()  # as if state.json never landed
    assert ckpt.latest_checkpoint(tmp_path).name == "step-1"


def test_keep_last_prunes_old_checkpoints_and_stale_temporaries(tmp_path):
    (tmp_path / "checkpoints" / ".tmp-step-99").mkdir(parents=True)
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(FakeEngine(), tmp_path, step, {"k": step}, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-3", "step-4"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-4"
    assert json.loads((tmp_path / "checkpoints" / "step-4" / "state.json").read_text())["k"] == 4


def test_saving_the_same_step_twice_replaces_it(tmp_path):
    ckpt.save_checkpoint(FakeEngine(), tmp_path, 5, {"v": 1}, keep_last=2)
    ckpt.save_checkpoint(FakeEngine(), tmp_path, 5, {"v": 2}, keep_last=2)
    assert json.loads((tmp_path / "checkpoints" / "step-5" / "state.json").read_text())["v"] == 2


def test_resume_drops_a_torn_last_metrics_line(tmp_path):
    from minillm_distill.train.metrics import MetricsWriter

    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo', encoding="utf-8")
    writer = MetricsWriter(path, enabled=True, truncate_after=2)
    assert writer.dropped_lines == [4]
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:2]
    writer.write({"step": 3, "loss": 0.5})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_weights_finite_sees_one_bad_value_anywhere():
    from types import SimpleNamespace

    import torch

    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    engine = SimpleNamespace(module=module)
    assert ckpt.weights_finite(engine, torch.device("cpu"))
    with torch.no_grad():
        module[1].bias[1] = float("inf")
    assert not ckpt.weights_finite(engine, torch.device("cpu"))
    with torch.no_grad():
        module[1].bias[1] = 0.0
        module[0].weight[2, 0] = float("nan")
    assert not ckpt.weights_finite(engine, torch.device("cpu"))


def test_a_payload_that_cannot_be_saved_leaves_no_temporary_folder(tmp_path):
    """Not a write failure (a state minillm cannot write, raised as TypeError): the partial ``.tmp-step-N`` goes
    too, and the previous checkpoint stays the latest."""
    ckpt.save_checkpoint(FakeEngine(), tmp_path, 2, {}, keep_last=3)
    with pytest.raises(TypeError):
        ckpt.save_checkpoint(FakeEngine(), tmp_path, 4, {}, keep_last=3, rank_payload={"bad": object()})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-2"]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-2"


def test_files_minillm_writes_follow_the_umask_even_where_a_writer_uses_0600(tmp_path):
    """safetensors writes its files mode 0600; minillm's state files (and model folders, through the same
    helper) get 0666 & ~umask like every other file."""
    import os

    from minillm_distill.file_modes import as_umask_allows
    from minillm_distill.state_files import save_state

    old = os.umask(0o027)
    try:
        save_state({"w": torch.ones(2)}, tmp_path / "s.json", tmp_path / "s.safetensors")
        assert oct((tmp_path / "s.safetensors").stat().st_mode & 0o777) == oct(0o640)
        folder = tmp_path / "model"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "w.bin").write_bytes(b"x")
        os.chmod(folder / "sub" / "w.bin", 0o600)
        as_umask_allows(folder)
        assert oct((folder / "sub" / "w.bin").stat().st_mode & 0o777) == oct(0o640)
    finally:
        os.umask(old)
