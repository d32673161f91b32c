"""``distill_job``: the stage both pipelines (``minillm reproduce``, the demo package) run for a training."""

from __future__ import annotations

import sys

from minillm_distill.jobs import distill_job


def test_argv_progress_and_overrides(tmp_path):
    run = tmp_path / "runs" / "kd"
    job = distill_job(
        "kd", "train KD", tmp_path / "kd.yaml", run, log=tmp_path / "kd.log", steps=7, deps=["sft"],
        overrides=["train.lr=1e-4", "seed=3"],
    )  # fmt: skip
    assert job.argv == [
        sys.executable, "-m", "minillm_distill", "distill", str(tmp_path / "kd.yaml"), "--output-dir", str(run),
        "--set", "train.lr=1e-4", "--set", "seed=3",
    ]  # fmt: skip
    assert (job.progress_file, job.total, job.deps) == (run / "metrics.jsonl", 7, ("sft",))
    assert job.log == tmp_path / "kd.log"


def test_resume_continues_a_checkpointed_run_and_restarts_an_unsaved_one(tmp_path):
    run = tmp_path / "run"
    args = ("sft", "train SFT", tmp_path / "sft.yaml", run)
    assert "--resume" not in distill_job(*args, log=tmp_path / "l", steps=1, resume=True).argv  # nothing yet

    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")  # started, never checkpointed
    assert "--resume" not in distill_job(*args, log=tmp_path / "l", steps=1, resume=True).argv
    assert not run.exists()  # removed: nothing to keep

    step = run / "checkpoints" / "step-2"
    step.mkdir(parents=True)
    (step / "state.json").write_text('{"step": 2}')
    (run / "checkpoints" / "latest").write_text("step-2\n")
    assert distill_job(*args, log=tmp_path / "l", steps=1, resume=True).argv[-1] == "--resume"
    assert "--resume" not in distill_job(*args, log=tmp_path / "l", steps=1).argv  # only when asked
    assert step.is_dir()
