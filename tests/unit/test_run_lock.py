"""One run folder, one distill: a second ``minillm distill`` on a folder another one is training in stops at
once with exit 2 and writes nothing there."""

from __future__ import annotations

import os

import pytest
from helpers import run_minillm

from minillm_distill.errors import UsageError
from minillm_distill.run_lock import LOCK_NAME, run_folder_lock


def test_the_lock_is_exclusive_and_released_with_its_block(tmp_path):
    run = tmp_path / "run"
    with run_folder_lock(run):
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(UsageError) as info, run_folder_lock(run):
            pass
        assert f"in use by another minillm distill (process {os.getpid()})" in info.value.message
    with run_folder_lock(run):  # released: taken again
        pass


def test_a_symlinked_lock_file_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="cannot lock the run folder"), run_folder_lock(run):
        pass
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_a_second_distill_on_a_busy_run_folder_exits_2_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    with run_folder_lock(run):  # this process stands for a distill that is training there
        res = run_minillm(
            "distill", "recipes/tiny/kd.yaml", "--output-dir", str(run), "--set", "train.total_steps=2",
            env={"OMP_NUM_THREADS": "1", "COLUMNS": "200"},
        )  # fmt: skip
    assert res.code == 2, res.output
    assert "is in use by another minillm distill" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]
    res = run_minillm(
        "distill", "recipes/tiny/kd.yaml", "--output-dir", str(run), "--set", "train.total_steps=2",
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert res.code == 0, res.output  # free again: the run goes ahead
