"""A run folder's links never lead minillm out of it: reading (export's recipe and metrics, the latest
checkpoint) and writing (distill's recipe, metrics, checkpoints) refuse a symbolic link to a place outside."""

from __future__ import annotations

import pytest

from minillm_distill import run_layout
from minillm_distill.errors import ExitCode, ResourceError


def _checkpoint(run, step):
    ck = run / "checkpoints" / f"step-{step}"
    ck.mkdir(parents=True)
    (ck / "state.json").write_text("{}", encoding="utf-8")
    return ck


def test_inside_accepts_the_folder_and_links_within_it_and_refuses_links_out(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside.txt"
    run.mkdir()
    outside.write_text("secret", encoding="utf-8")
    (run / "metrics.jsonl").write_text("", encoding="utf-8")
    assert run_layout.inside(run, run / "metrics.jsonl", "metrics.jsonl") == run / "metrics.jsonl"
    assert run_layout.inside(run, run / "not-yet-written", "x") == run / "not-yet-written"
    (run / "alias.jsonl").symlink_to(run / "metrics.jsonl")  # a link that stays inside: fine
    run_layout.inside(run, run / "alias.jsonl", "alias")
    (run / "recipe.yaml").symlink_to(outside)
    with pytest.raises(ResourceError) as info:
        run_layout.inside(run, run / "recipe.yaml", "recipe.yaml")
    assert info.value.exit_code == ExitCode.RESOURCE and str(outside) in info.value.message
    (run / "dangling").symlink_to(tmp_path / "nothing-here")  # a link out, even to nothing, is refused
    with pytest.raises(ResourceError):
        run_layout.inside(run, run / "dangling", "dangling")
    (tmp_path / "elsewhere").mkdir()
    (run / "checkpoints").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a folder on the way
    with pytest.raises(ResourceError):
        run_layout.inside(run, run / "checkpoints" / "latest", "checkpoints/latest")


def test_latest_never_leads_to_another_runs_checkpoint(tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    _checkpoint(run, 1)
    theirs = _checkpoint(other, 9)
    assert run_layout.latest_checkpoint(run) == run / "checkpoints" / "step-1"
    (run / "checkpoints" / "latest").write_text(f"../../other/checkpoints/{theirs.name}\n", encoding="utf-8")
    with pytest.raises(ResourceError, match="leads out of the run folder"):
        run_layout.latest_checkpoint(run)
    (run / "checkpoints" / "latest").unlink()
    (run / "checkpoints" / "step-5").symlink_to(theirs, target_is_directory=True)
    with pytest.raises(ResourceError, match="leads out of the run folder"):
        run_layout.latest_checkpoint(run)


@pytest.mark.slow
def test_export_does_not_read_a_linked_recipe_or_metrics_into_its_card(cli, tmp_path):
    from run_folders import make_run, scratch_student

    run, _ = make_run(tmp_path, scratch_student("gpt2"))
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE", encoding="utf-8")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(secret)
    res = cli("export", run, tmp_path / "hf")
    assert res.code == 5, res.output
    assert "leads out of the run folder" in res.output and "TOP-SECRET-LINE" not in res.output
    assert not (tmp_path / "hf").exists()


@pytest.mark.slow
def test_distill_never_writes_through_a_link_out_of_its_run_folder(cli, tmp_path):
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    run.mkdir()
    victim.write_text("keep me", encoding="utf-8")
    (run / "metrics.jsonl").symlink_to(victim)
    res = cli("distill", "recipes/tiny/kd.yaml", "--output-dir", run, "--set", "train.total_steps=2")
    assert res.code == 5, res.output
    assert "metrics.jsonl" in res.output and "leads out of the run folder" in res.output
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not (run / "recipe.yaml").exists()


@pytest.mark.parametrize("odd", ["step-abc", "step-..", "step-", "step-1e3", "step-٣", "step-99999999999999999999"])
def test_folders_not_named_step_and_digits_are_not_checkpoints(tmp_path, odd):
    run = tmp_path / "run"
    _checkpoint(run, 2)
    _checkpoint(run, 10)
    weird = run / "checkpoints" / odd
    weird.mkdir(parents=True, exist_ok=True)
    (weird / "state.json").write_text('{"step": 7}', encoding="utf-8")
    assert [p.name for p in run_layout.list_checkpoints(run)] == ["step-2", "step-10"]  # numeric order
    (run / "checkpoints" / "latest").write_text(odd + "\n", encoding="utf-8")
    assert run_layout.latest_checkpoint(run).name == "step-10"  # a pointer to it is ignored too


def test_an_unreadable_latest_pointer_falls_back_to_the_highest_step(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run, 3)
    (run / "checkpoints" / "latest").write_bytes(b"\xff\xfe step")
    assert run_layout.latest_checkpoint(run).name == "step-3"
    (run / "checkpoints" / "latest").unlink()
    (run / "checkpoints" / "latest").mkdir()
    assert run_layout.latest_checkpoint(run).name == "step-3"
