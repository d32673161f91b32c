"""What ``minillm distill`` advises works: extending a run is ``--set train.total_steps``, never a ``--max-steps``
beyond it (that printed "done: step 20/20", exit 0, and extended nothing); the command that resumes a run repeats
the one given, so it names the recipe (the Ctrl-C panel said ``--resume --output-dir runs/x``, which fails)."""

from __future__ import annotations

import shlex

from minillm_distill.run_layout import resume_command


def test_max_steps_beyond_total_steps_is_a_usage_error_that_says_how_to_extend(cli, tmp_path):
    res = cli("distill", "tiny/kd", "--output-dir", tmp_path / "run", "--max-steps", "40")
    assert res.code == 2, res.output
    flat = " ".join(res.stderr.replace("│", " ").split())
    assert "--max-steps 40 is beyond train.total_steps (20)" in flat
    assert "--set train.total_steps=40" in flat
    assert not (tmp_path / "run").exists()


def test_the_resume_command_repeats_the_given_one_with_resume_and_the_run_folder():
    given = ["distill", "recipes/tiny/kd.yaml", "--set", "train.lr=3e-4"]
    again = resume_command(given, "runs/my run")
    assert shlex.split(again) == ["minillm", *given, "--resume", "--output-dir", "runs/my run"]
    already = ["distill", "tiny/kd", "--output-dir", "runs/x", "--resume"]
    assert shlex.split(resume_command(already, "runs/x")) == ["minillm", *already]
    assert "--output-dir=runs/y" in resume_command(["distill", "tiny/kd", "--output-dir=runs/y"], "runs/y")
    assert resume_command(["distill", "tiny/kd", "--output-dir=runs/y"], "runs/y").count("--output-dir") == 1
