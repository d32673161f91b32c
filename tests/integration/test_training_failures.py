"""Failures during training, through the CLI: a plugin's exception is a panel naming the plugin (exit 4), and
under ``--nproc 2`` a worker killed by a signal is one panel naming the rank and the signal (exit 1).

The plugin is tests/plugin_fixtures/fx_raising.py, installed as the distribution ``fx-raising`` through a
dist-info folder on PYTHONPATH (entry point group ``minillm``); ``MINILLM_FX_FAIL`` says what fails.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest
import torch
from helpers import PLUGIN_FIXTURES, run_minillm

import minillm_distill.plugins as plugins_mod
from minillm_distill.errors import PeerLost, PluginError
from minillm_distill.plugin_blame import blame_plugin
from minillm_distill.plugins import load_plugins
from minillm_distill.train import launch, loop

FIXTURES = PLUGIN_FIXTURES
TINY = ("recipes/tiny/kd.yaml", "--set", "train.micro_batch_size=2")


@pytest.fixture
def plugin_env(install_plugin) -> dict[str, str]:
    env = install_plugin("fx_raising", distribution="fx-raising", name="raising", path=FIXTURES)
    return {**env, "OMP_NUM_THREADS": "1"}


def _distill(env: dict[str, str], fail: str, *args: str):
    return run_minillm("distill", *TINY, *args, env={**env, "MINILLM_FX_FAIL": fail})


@pytest.mark.slow
def test_divergence_per_token_exception_names_the_plugin(plugin_env, tmp_path):
    common = ("--output-dir", tmp_path / "run", "--set", "divergence.name=fixture_raising_kl")
    res = _distill(plugin_env, "per_token", *common, "--set", "train.total_steps=2")
    assert res.code == 4, res.output
    out = " ".join(res.output.split())  # the panel wraps lines
    assert "Plugin error (exit 4)" in out
    assert "plugin 'raising' (distribution fx-raising) failed in RaisingKL.per_token" in out
    assert "ValueError: fixture failure in per_token" in out
    assert "Traceback" not in res.output and "[rank0]" not in res.output
    debug = run_minillm(
        "--debug", "distill", *TINY, "--output-dir", tmp_path / "dbg", "--set", "divergence.name=fixture_raising_kl",
        env={**plugin_env, "MINILLM_FX_FAIL": "per_token"},
    )  # fmt: skip
    assert debug.code == 4, debug.output
    assert "Traceback" in debug.output and 'fx_raising.py", line' in debug.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "words"),
    [("shape", "1) from per_token"), ("scalar", "returned shape () from per_token"), ("negative", "negative value")],
)
def test_wrong_divergence_output_is_stopped_at_its_first_call(plugin_env, tmp_path, mode, words):
    args = ("--output-dir", tmp_path / "run", "--set", "divergence.name=fixture_raising_kl")
    res = _distill(plugin_env, mode, *args, "--set", "train.total_steps=2")
    assert res.code == 4, res.output
    out = " ".join(res.output.split())
    assert "fixture_raising_kl" in out and words in out, out
    assert "Traceback" not in res.output
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_sampler_exception_under_two_processes_is_one_panel(plugin_env, tmp_path):
    res = _distill(
        plugin_env, "sample", "--nproc", "2", "--output-dir", tmp_path / "run",
        "--set", "sampler.name=fixture_raising", "--set", "train.total_steps=2",
    )  # fmt: skip
    assert res.code == 4, res.output
    out = " ".join(res.output.split())
    assert out.count("Plugin error (exit 4)") == 1
    assert "plugin 'raising' (distribution fx-raising) failed in RaisingSampler.sample" in out
    assert "Traceback" not in res.output and "[rank0]" not in res.output


@pytest.mark.slow
def test_a_failure_only_rank_1_sees_is_one_panel_from_the_launcher(plugin_env, tmp_path):
    """Rank 0 runs on and only loses its peer: the launcher renders rank 1's own error, with its exit code."""
    res = _distill(
        plugin_env, "sample_rank1", "--nproc", "2", "--output-dir", tmp_path / "run",
        "--set", "sampler.name=fixture_raising", "--set", "train.total_steps=2",
    )  # fmt: skip
    assert res.code == 4, res.output
    out = " ".join(res.output.split())
    assert out.count("Plugin error (exit 4)") == 1
    flat = re.sub(r"[\s│]+", " ", res.output)
    assert "rank 1: plugin 'raising' (distribution fx-raising) failed in RaisingSampler.sample" in flat, res.output
    assert "what to do:" in out
    assert "Traceback" not in res.output and "Run failed" not in out


@pytest.mark.slow
def test_worker_killed_by_signal_is_one_panel_with_the_resume_command(plugin_env, tmp_path):
    run = tmp_path / "run"
    res = _distill(
        plugin_env, "kill", "--nproc", "2", "--output-dir", run, "--set", "divergence.name=fixture_raising_kl",
        "--set", "train.total_steps=6", "--set", "train.save_every=1",
    )  # fmt: skip
    assert res.code == 1, res.output
    out = " ".join(res.output.split())
    assert out.count("Run failed (exit 1)") == 1
    assert "worker rank 1 was killed by SIGKILL" in out
    assert "can be resumed" in out and out.rstrip().count("--resume") == 1
    # rank 1 dies a few steps in (its third divergence call), after at least one checkpoint: the panel names the
    # latest one there is (and may wrap the long path anywhere)
    steps = [p for p in (run / "checkpoints").glob("step-*") if p.name.removeprefix("step-").isdigit()]
    written = sorted(steps, key=lambda p: int(p.name.removeprefix("step-")))
    assert written and int(written[-1].name.removeprefix("step-")) < 6
    assert str(written[-1]) in re.sub(r"[\s│]", "", res.output)
    assert "Traceback" not in res.output and "[rank0]" not in res.output
    assert "Connection closed by peer" not in res.output and "exitcode" not in res.output


def test_builtin_plugin_failure_is_blamed_on_the_builtin_plugin(monkeypatch):
    """fkl's per_token on mismatched shapes raises inside torch, called from the built-in package's helpers:
    the innermost plugin frame is in minillm_distill.builtins.divergences._math, the method minillm called is
    ForwardKL.per_token, the plugin ``divergences`` of the distribution ``minillm``."""
    import torch

    monkeypatch.delenv(plugins_mod.DISABLE_ENV, raising=False)
    plugins = load_plugins()
    fkl = plugins.divergences.get("fkl")()
    try:
        fkl.per_token(torch.zeros(3, 5), torch.zeros(3, 7), torch.zeros(3, dtype=torch.long))
    except RuntimeError as exc:
        blamed = blame_plugin(exc, plugins)
    else:
        pytest.fail("mismatched shapes did not raise")
    assert isinstance(blamed, PluginError) and blamed.exit_code == 4
    assert blamed.message.startswith(
        "plugin 'divergences' (distribution minillm-distill) failed in ForwardKL.per_token:"
    )
    assert "_math.py" in blamed.details[0]


def test_error_outside_plugin_code_is_not_blamed_on_a_plugin(monkeypatch):
    monkeypatch.delenv(plugins_mod.DISABLE_ENV, raising=False)
    try:
        {}["missing"]
    except KeyError as exc:
        assert blame_plugin(exc, load_plugins()) is None


def test_fixture_module_is_importable_for_the_subprocesses():
    sys.path.insert(0, str(FIXTURES))
    try:
        import fx_raising

        assert fx_raising.RaisingKL.name == "fixture_raising_kl"
    finally:
        sys.path.remove(str(FIXTURES))
        sys.modules.pop("fx_raising", None)


GLOO_PEER_GONE = (
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:46723. This is "
    "typically caused by a remote worker crashing."
)


@pytest.mark.parametrize(("world", "expected"), [(2, PeerLost), (1, RuntimeError)])
def test_collective_failing_for_a_lost_peer_is_peer_lost_only_with_peers(monkeypatch, world, expected):
    monkeypatch.setattr(loop.dist_utils, "init_distributed", lambda: None)
    monkeypatch.setattr(loop.dist_utils, "world_size", lambda: world)
    monkeypatch.setattr(loop, "_run", lambda r, o: (_ for _ in ()).throw(RuntimeError(GLOO_PEER_GONE)))
    with pytest.raises(expected) as info:
        loop.run_distill(None, loop.RunOptions())
    assert (type(info.value) is PeerLost) == (world == 2)
    if world == 2:
        assert info.value.exit_code == 1 and "--resume" in info.value.hint


def test_the_first_non_sigterm_signal_death_is_the_cause(tmp_path):
    """The launcher SIGTERMs the survivors after the first failure: the SIGKILLed rank is named, and a rank
    that recorded its own exit code is not a signal death."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failure(rank: int, code: int) -> ProcessFailure:
        f = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=code, error_file=str(tmp_path / "none"))
        f.timestamp = 5
        return f

    err = ChildFailedError("minillm", {0: failure(0, -signal.SIGTERM), 2: failure(2, -signal.SIGKILL)})
    assert launch._killed_by_signal(err, tmp_path) == (2, "SIGKILL")
    (tmp_path / "rank-2").write_text("0")  # rank 2 exited cleanly by itself: only rank 0's SIGTERM is left
    assert launch._killed_by_signal(err, tmp_path) == (0, "SIGTERM")
    # rank 2 failed with its own error (already printed): rank 0's SIGTERM is the launcher stopping it
    (tmp_path / "rank-2").write_text("5")
    assert launch._killed_by_signal(err, tmp_path) is None
    (tmp_path / "rank-2").unlink()
    (tmp_path / "rank-0").write_text("4")  # rank 0 failed by itself; rank 2 was SIGKILLed from outside
    assert launch._killed_by_signal(err, tmp_path) == (2, "SIGKILL")
    (tmp_path / "rank-2").write_text("1")
    assert launch._killed_by_signal(err, tmp_path) is None


def test_launcher_removes_a_partial_save_once_every_worker_stopped(tmp_path, monkeypatch):
    """A rank still writing ``.tmp-step-N`` when another failed cannot clean up after itself (the launcher
    stops it): the launcher removes the partial save once all workers are gone, and keeps finished ones."""
    import torch.distributed.launcher.api as launcher_api
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    run = tmp_path / "run"
    ck = run / "checkpoints"

    def fake_launch(config, entrypoint):
        def workers(*args):
            (ck / "step-1").mkdir(parents=True)
            (ck / "latest").write_text("step-1\n")
            (ck / ".tmp-step-2" / "engine").mkdir(parents=True)  # the survivor's half-written save
            (ck / ".latest.tmp").write_text("step-")
            (Path(os.environ[launch.EXIT_DIR_ENV]) / "rank-1").write_text("5")
            failure = ProcessFailure(local_rank=1, pid=101, exitcode=5, error_file=str(tmp_path / "none"))
            raise ChildFailedError("minillm", {1: failure})

        return workers

    monkeypatch.setattr(launcher_api, "elastic_launch", fake_launch)
    assert launch.launch(2, ["distill", "r.yaml"], run_dir=run) == 5
    assert sorted(p.name for p in ck.iterdir()) == ["latest", "step-1"]


def test_a_nan_gradient_with_a_finite_loss_skips_the_update_and_the_run_goes_on(plugin_env, tmp_path):
    """The divergence's value is finite at step 2 but its gradient is NaN: that update is skipped (weights
    unchanged, ``skipped``, ``grad_norm`` null, the finite loss reported), the other steps train, and every
    checkpoint and final/ hold finite weights."""
    import json

    from safetensors.torch import load_file

    run = tmp_path / "run"
    common = ("--set", "divergence.name=fixture_raising_kl", "--set", "sampler.name=fixture_raising")
    res = _distill(plugin_env, "nan_grad_at_2", *common, "--set", "train.total_steps=3", "--output-dir", str(run))
    assert res.code == 0, res.output
    assert "step 2: non-finite gradient, update skipped" in res.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in rows] == [False, True, False]
    assert rows[1]["grad_norm"] is None and rows[1]["loss"] is not None and rows[0]["grad_norm"] > 0
    weights = load_file(run / "final" / "model.safetensors")
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_stages_report_the_update_they_skipped_and_keep_the_lr_schedule(plugin_env, tmp_path, stage):
    """ZeRO 1-3 skip an update with non-finite gradients themselves (DeepSpeed's overflow check): the step is
    reported ``skipped`` (it was not), DeepSpeed's own warning is not printed, the LR schedule stays on the step
    count as at ZeRO 0 (DeepSpeed held it back a step), and the weights stay finite."""
    import json

    from safetensors.torch import load_file

    common = (
        "--set", "divergence.name=fixture_raising_kl", "--set", "sampler.name=fixture_raising",
        "--set", "train.total_steps=5", "--set", "train.warmup_steps=1", "--set", f"engine.zero_stage={stage}",
    )  # fmt: skip
    res = _distill(plugin_env, "nan_grad_at_2", *common, "--output-dir", str(tmp_path / "nan"))
    assert res.code == 0, res.output
    assert "step 2: non-finite gradient, update skipped" in res.output and "OVERFLOW" not in res.output
    clean = _distill(plugin_env, "", *common, "--output-dir", str(tmp_path / "clean"))
    assert clean.code == 0, clean.output
    rows = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (tmp_path / "clean" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in rows] == [False, True, False, False, False]
    assert rows[1]["grad_norm"] is None
    assert [r["lr"] for r in rows] == pytest.approx([r["lr"] for r in reference])
    weights = load_file(tmp_path / "nan" / "final" / "model.safetensors")
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())


def test_a_run_whose_every_update_was_skipped_fails_and_saves_nothing(plugin_env, tmp_path):
    run = tmp_path / "run"
    common = ("--set", "divergence.name=fixture_raising_kl", "--set", "sampler.name=fixture_raising")
    res = _distill(plugin_env, "nan_grad", *common, "--set", "train.total_steps=2", "--output-dir", str(run))
    assert res.code == 1, res.output
    assert "every step of this run (2) skipped its update" in res.output.replace("\n", " ")
    assert not (run / "final").exists() and not (run / "checkpoints").exists()
