"""A full disk or a read-only output folder during training or eval: exit 5 naming the path, no traceback,
the previous checkpoint intact and resumable. Uses a small tmpfs (needs root and ``mount``; skipped elsewhere)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import BENCH_FIXTURES, run_minillm

from minillm_distill.errors import ExitCode, ResourceError
from minillm_distill.io_errors import write_failure, writing
from minillm_distill.train import checkpoint as ckpt

KD = "recipes/tiny/kd.yaml"


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {proc.stderr.strip() or proc.returncode}")


@pytest.fixture
def small_disk(tmp_path, request):
    """A tmpfs of ``size`` (default 600 KiB: room for one tiny-kd checkpoint, ~484 KB, but not two)."""
    if shutil.which("mount") is None:
        pytest.skip("cannot mount tmpfs: no mount command")
    d = tmp_path / "disk"
    d.mkdir()
    _mount("-t", "tmpfs", "-o", f"size={getattr(request, 'param', '600k')}", "tmpfs", str(d))
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def distill(*args: str):
    return run_minillm("distill", KD, *args, env={"OMP_NUM_THREADS": "1", "COLUMNS": "400"})


def metrics_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_write_failure_recognises_torch_and_safetensors_reports(tmp_path):
    assert write_failure(OSError(errno.ENOSPC, "No space left on device"), tmp_path) == "no space left on device"
    assert write_failure(OSError(errno.EROFS, "Read-only file system"), tmp_path) == "read-only file system"
    safetensors_msg = Exception("Error while serializing: I/O error: No space left on device (os error 28)")
    assert write_failure(safetensors_msg, tmp_path) == "no space left on device"
    wrapped = RuntimeError("checkpoint failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert write_failure(wrapped, tmp_path) == "disk quota exceeded"
    # torch's zip writer gives no errno: the cause comes from the file system (tmp_path has room: generic)
    assert write_failure(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5 vs 3"), tmp_path)
    assert write_failure(RuntimeError("shape mismatch"), tmp_path) is None
    assert write_failure(FileNotFoundError(errno.ENOENT, "nope"), tmp_path) is None


def test_writing_removes_the_partial_file_and_names_the_path(tmp_path):
    target, partial = tmp_path / "scores.json", tmp_path / "scores.json.partial"
    with pytest.raises(ResourceError) as info, writing(target, "evaluation output", cleanup=[partial]):
        partial.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(partial))
    assert not partial.exists()
    err = info.value
    assert err.exit_code == ExitCode.RESOURCE and str(target) in err.message and "no space left" in err.message
    with pytest.raises(RuntimeError, match="shape"), writing(target, "x", cleanup=[partial]):
        raise RuntimeError("shape mismatch")  # not a write failure: untouched


class FullDiskEngine:
    def save_checkpoint(self, save_dir: str, tag: str, save_latest: bool = True) -> None:
        Path(save_dir, tag).mkdir(parents=True)
        Path(save_dir, tag, "model.pt").write_text("half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 107072 vs 106960")


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path):
    from run_folders import FakeEngine

    ckpt.save_checkpoint(FakeEngine(), tmp_path, 2, {"v": 1}, keep_last=3)
    with pytest.raises(ResourceError) as info:
        ckpt.save_checkpoint(FullDiskEngine(), tmp_path, 4, {"v": 2}, keep_last=3)
    assert str(tmp_path / "checkpoints" / "step-4") in info.value.message
    assert "step-2 is intact" in info.value.hint and "--resume" in info.value.hint
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-2"]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-2"


@pytest.mark.slow
def test_disk_full_during_checkpoint_exits_5_then_resumes(small_disk, tmp_path):
    run = small_disk / "run"
    res = distill("--output-dir", run, "--set", "train.total_steps=4", "--set", "train.save_every=1")
    assert res.code == 5, res.output
    assert "Traceback" not in res.output
    assert "no space left on device" in res.output and str(run / "checkpoints") in res.output
    assert "--resume" in res.output
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["latest", "step-1"], names  # the partial .tmp-step-2 is gone, step-1 intact
    # space is freed: the run is copied to a roomy disk and resumed there
    roomy = tmp_path / "roomy"
    shutil.copytree(run, roomy)
    res = distill("--output-dir", roomy, "--set", "train.total_steps=4", "--set", "train.save_every=1", "--resume")
    assert res.code == 0, res.output
    assert metrics_steps(roomy) == [1, 2, 3, 4]
    assert (roomy / "final" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize("small_disk", ["8m"], indirect=True)
def test_read_only_output_folder_exits_5_then_resumes(small_disk):
    run = small_disk / "run"
    common = ("--output-dir", run, "--set", "train.total_steps=2", "--set", "train.save_every=1")
    assert distill(*common, "--max-steps", "1").code == 0
    _mount("-o", "remount,ro", str(small_disk))
    res = distill(*common, "--resume")
    assert res.code == 5, res.output
    assert "Traceback" not in res.output and "read-only file system" in res.output and str(run) in res.output
    _mount("-o", "remount,rw", str(small_disk))
    res = distill(*common, "--resume")
    assert res.code == 0, res.output
    assert metrics_steps(run) == [1, 2]


@pytest.mark.slow
def test_torn_metrics_line_is_dropped_on_resume(tmp_path):
    run = tmp_path / "run"
    common = ("--output-dir", run, "--set", "train.total_steps=4", "--set", "train.save_every=2")
    assert distill(*common, "--max-steps", "2").code == 0
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 3, "loss": 0.4')  # torn by a power loss mid-line
    res = distill(*common, "--resume")
    assert res.code == 0, res.output
    assert "Traceback" not in res.output
    assert "dropped unreadable line(s) 3" in res.output
    assert metrics_steps(run) == [1, 2, 3, 4]


# -- eval and generate ------------------------------------------------------------------------------------


def flat(text: str) -> str:
    """The panel's text without its box and line wrapping (a long path is folded over several lines)."""
    return "".join(text.replace("│", "").split())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", "gpt2", max_positions=512)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with pytest.raises(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
    return filler


def _eval(cli, model: Path, out: Path):
    fixtures = BENCH_FIXTURES
    return cli("eval", "--bench", "dolly", "--model", model, "--data", fixtures / "dolly.jsonl",
               "--max-new-tokens", "4", "--limit", "2", "--output-dir", out)  # fmt: skip


@pytest.mark.parametrize("small_disk", ["64k"], indirect=True)
def test_eval_on_a_full_disk_exits_5_and_leaves_no_partial_file(cli, tiny_model, small_disk):
    filler = _fill(small_disk)
    out = small_disk / "eval"
    res = _eval(cli, tiny_model, out)
    assert res.code == 5, res.output
    assert "Traceback" not in res.output and "nospaceleftondevice" in flat(res.output)
    assert flat(str(out / "dolly" / "predictions.jsonl")) in flat(res.output)
    assert not list(small_disk.rglob("*.partial"))
    filler.unlink()  # space freed: the same command now works
    assert _eval(cli, tiny_model, out).code == 0
    assert (out / "dolly" / "scores.json").exists()


@pytest.mark.parametrize("small_disk", ["64k"], indirect=True)
def test_eval_and_generate_into_a_read_only_folder_exit_5(cli, tiny_model, small_disk):
    _mount("-o", "remount,ro", str(small_disk))
    try:
        res = _eval(cli, tiny_model, small_disk / "eval")
        assert res.code == 5, res.output
        assert "Traceback" not in res.output and "read-onlyfilesystem" in flat(res.output)
        assert flat(str(small_disk / "eval")) in flat(res.output)
        out = small_disk / "gen" / "out.jsonl"
        res = cli("generate", "-m", tiny_model, "-p", "Say hi", "--max-new-tokens", "2", "-o", out)
        assert res.code == 5, res.output
        assert "Traceback" not in res.output and "read-onlyfilesystem" in flat(res.output)
        assert flat(str(out)) in flat(res.output)
    finally:
        _mount("-o", "remount,rw", str(small_disk))


@pytest.mark.parametrize("small_disk", ["64k"], indirect=True)
def test_export_onto_a_full_disk_exits_5_and_leaves_nothing(cli, tmp_path, small_disk):
    from run_folders import make_run, scratch_student

    run, _ = make_run(tmp_path, scratch_student("gpt2"))
    filler = _fill(small_disk)
    out = small_disk / "hf"
    res = cli("export", run, out)
    assert res.code == 5, res.output
    assert "Traceback" not in res.output and "nospaceleftondevice" in flat(res.output)
    assert flat(str(out)) in flat(res.output)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no temporary folder left behind
    filler.unlink()
    assert cli("export", run, out).code == 0
    assert (out / "model.safetensors").exists()


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_final_folder_on_a_full_disk_keeps_the_old_one(tiny_model, small_disk):
    from types import SimpleNamespace

    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec
    from minillm_distill.train.final import save_hf_folder

    loaded = load_model(ModelSpec(path=str(tiny_model)))
    out = small_disk / "final"
    out.mkdir()
    (out / "model.safetensors").write_text("the previous final model")
    filler = _fill(small_disk)
    with pytest.raises(ResourceError) as info:
        save_hf_folder(SimpleNamespace(module=loaded.model), loaded.tokenizer, out)
    assert str(out) in info.value.message and "no space left on device" in info.value.message
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "final"]  # no .final.tmp left
    assert (out / "model.safetensors").read_text() == "the previous final model"
    filler.unlink()
    save_hf_folder(SimpleNamespace(module=loaded.model), loaded.tokenizer, out)
    assert (out / "config.json").exists() and (out / "model.safetensors").stat().st_size > 1000


@pytest.mark.slow
def test_two_processes_on_a_full_disk_exit_5_without_hanging(small_disk):
    run = small_disk / "run"
    res = run_minillm(
        "distill", KD, "--nproc", "2", "--output-dir", run, "--set", "train.total_steps=4", "--set",
        "train.save_every=1", env={"OMP_NUM_THREADS": "1", "COLUMNS": "400"}, timeout=240,
    )  # fmt: skip
    assert res.code == 5, res.output
    assert "no space left on device" in res.output and str(run / "checkpoints") in res.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-1"]
    assert ckpt.latest_checkpoint(run).name == "step-1"
