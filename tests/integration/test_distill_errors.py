"""Failure behaviour of the training loop that needs no real training."""

from __future__ import annotations

import pytest
import torch

from minillm_distill.errors import ExitCode, ResourceError
from minillm_distill.train import loop


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes. out of memory"),
        MemoryError(),
    ],
)
def test_out_of_memory_becomes_exit_5_with_hints(monkeypatch, exc):
    monkeypatch.setattr(loop.dist_utils, "init_distributed", lambda: None)

    def boom(recipe, opts):
        raise exc

    monkeypatch.setattr(loop, "_run", boom)
    with pytest.raises(ResourceError) as info:
        loop.run_distill(None, loop.RunOptions())
    err = info.value
    assert err.exit_code == ExitCode.RESOURCE == 5
    for hint in ("micro_batch_size", "zero_stage", "offload", "max_response_length"):
        assert hint in err.hint


def test_other_errors_are_not_disguised_as_oom(monkeypatch):
    monkeypatch.setattr(loop.dist_utils, "init_distributed", lambda: None)
    monkeypatch.setattr(loop, "_run", lambda r, o: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        loop.run_distill(None, loop.RunOptions())


def test_a_failed_write_in_the_run_dir_becomes_exit_5(monkeypatch, tmp_path):
    import errno
    from types import SimpleNamespace

    monkeypatch.setattr(loop.dist_utils, "init_distributed", lambda: None)
    target = tmp_path / "run" / "recipe.yaml"

    def full(recipe, opts):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(loop, "_run", full)
    with pytest.raises(ResourceError) as info:
        loop.run_distill(SimpleNamespace(output_dir=str(tmp_path / "run")), loop.RunOptions())
    assert info.value.exit_code == 5 and str(target) in info.value.message
    assert "no space left on device" in info.value.message and "--resume" in info.value.hint

    outside = tmp_path / "elsewhere.txt"  # a permission problem on a file minillm only reads stays as it is
    monkeypatch.setattr(loop, "_run", lambda r, o: (_ for _ in ()).throw(PermissionError(13, "denied", str(outside))))
    with pytest.raises(PermissionError):
        loop.run_distill(SimpleNamespace(output_dir=str(tmp_path / "run")), loop.RunOptions())
