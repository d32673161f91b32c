"""A run folder is input like any other: checkpoint folders that are not ``step-`` and digits are ignored by
``--resume`` and ``export`` (they were ``ValueError: invalid literal for int()`` tracebacks), and a ``state.json``
whose ``step`` is not a step number is a damaged checkpoint (exit 5), never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import run_minillm

from minillm_distill.errors import ExitCode

KD = ("recipes/tiny/kd.yaml", "--set", "train.micro_batch_size=2", "--set", "train.total_steps=3")
ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A tiny KD run stopped after its checkpoint at step 2 (of 3)."""
    run = tmp_path_factory.mktemp("malformed") / "run"
    res = run_minillm("distill", *KD, "--set", "train.save_every=2", "--max-steps", "2", "--output-dir", run, env=ENV)
    assert res.code == 0, res.output
    assert (run / "checkpoints" / "step-2" / "state.json").exists()
    return run


def _copy(stopped_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    return run


def test_odd_checkpoint_folder_names_are_ignored_by_resume_and_export(stopped_run, tmp_path):
    run = _copy(stopped_run, tmp_path)
    for odd in ("step-abc", "step-.."):
        shutil.copytree(run / "checkpoints" / "step-2", run / "checkpoints" / odd)
    (run / "checkpoints" / "latest").unlink()  # the highest complete step is found by listing
    res = run_minillm("export", run, tmp_path / "out", env=ENV)
    assert res.code == 0, res.output
    assert "Traceback" not in res.output and (tmp_path / "out" / "config.json").exists()
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "step 2" in card, card
    res = run_minillm("distill", *KD, "--output-dir", run, "--resume", env=ENV)
    assert res.code == 0, res.output
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert (run / "final").is_dir()


@pytest.mark.parametrize("step", ['"abc"', '"../../etc"', "-1", "true", "7", "null"])
def test_a_state_json_step_that_is_not_this_checkpoints_number_is_a_damaged_checkpoint(stopped_run, tmp_path, step):
    run = _copy(stopped_run, tmp_path)
    state = run / "checkpoints" / "step-2" / "state.json"
    data = json.loads(state.read_text())
    state.write_text(state.read_text().replace(f'"step": {data["step"]}', f'"step": {step}'))
    res = run_minillm("distill", *KD, "--output-dir", run, "--resume", env=ENV)
    assert res.code == ExitCode.RESOURCE, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert "state.json" in flat and '"step"' in flat and "Traceback" not in res.output
