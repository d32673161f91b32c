"""What a plugin hands back during ``minillm distill`` is checked before it is used: every break the issue found
(tried as a plugin author would) ends in an exit-4 panel naming the plugin, its distribution and what broke,
never a raw traceback, a silent run or a leftover ``.tmp-step-N``.

The plugin is tests/plugin_fixtures/fx_raising.py, installed with the test kit's ``install_plugin`` fixture as
distribution ``fx-raising``; ``MINILLM_FX_FAIL`` says what breaks.
"""

from __future__ import annotations

import pytest
from helpers import PLUGIN_FIXTURES, run_minillm

TINY_KD = ("recipes/tiny/kd.yaml", "--set", "train.micro_batch_size=2", "--set", "train.total_steps=2")
SAMPLER = ("--set", "sampler.name=fixture_raising")
SEQUENCE = (
    "recipes/tiny/minillm.yaml", "--set", "divergence={name: fixture_sequence}", "--set", "data.pretrain=null",
    "--set", "train.total_steps=2", "--set", "sampler.max_new_tokens=6",
)  # fmt: skip


@pytest.fixture
def env(install_plugin) -> dict[str, str]:
    return {**install_plugin("fx_raising", distribution="fx-raising", name="raising", path=PLUGIN_FIXTURES),
            "OMP_NUM_THREADS": "1"}  # fmt: skip


def _panel(res) -> str:
    assert res.code == 4, res.output
    assert "Traceback" not in res.output, res.output
    return " ".join(res.output.replace("│", " ").split())


def _no_checkpoint_debris(run) -> None:
    ck = run / "checkpoints"
    assert not ck.exists() or not [p.name for p in ck.iterdir() if p.name.startswith(".")], list(ck.iterdir())


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("short_mask", "response_mask has shape (2, 27), not response_ids' (2, 28)"),
        ("vocab", "response ids outside [0, 257) inside the mask (e.g. 1000000)"),
        ("dropped_row", "a dropped or reordered row"),
        ("holes", "response_mask has holes"),
        ("nan_logprobs", "behaviour_logprobs has nan/inf values"),
        ("bad_state", "state_dict() is not JSON"),
        ("nan_metric", "metrics['a'] is nan, not a finite number"),
    ],
)
def test_a_broken_rollout_or_sampler_state_is_a_panel_naming_the_sampler(env, tmp_path, mode, words):
    run = tmp_path / "run"
    res = run_minillm("distill", *TINY_KD, *SAMPLER, "--output-dir", run, env={**env, "MINILLM_FX_FAIL": mode})
    out = _panel(res)
    assert "Plugin error (exit 4)" in out
    owner = "sampler 'fixture_raising' (plugin 'raising', distribution fx-raising; class fx_raising.RaisingSampler)"
    assert owner in out
    assert words in out, out
    assert "minillm plugins check fixture_raising" in out
    assert not (run / "final").exists()
    _no_checkpoint_debris(run)


def test_a_sampler_state_that_turns_bad_later_stops_before_the_checkpoint_is_begun(env, tmp_path):
    run = tmp_path / "run"
    res = run_minillm(
        "distill", *TINY_KD, *SAMPLER, "--set", "train.total_steps=3", "--set", "train.save_every=2",
        "--output-dir", run, env={**env, "MINILLM_FX_FAIL": "bad_state_later"},
    )  # fmt: skip
    out = _panel(res)
    assert "has a state that cannot be checkpointed" in out and "state_dict() is not JSON" in out
    # the state turned bad at the 3rd call: step 2's checkpoint is written and stays the latest, step 3's is
    # never begun
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-2"
    assert not (run / "checkpoints" / "step-3").exists() and not (run / "final").exists()
    _no_checkpoint_debris(run)


def test_a_token_divergence_on_detached_logits_is_a_panel_not_a_deepspeed_traceback(env, tmp_path):
    res = run_minillm(
        "distill", *TINY_KD, "--set", "divergence.name=fixture_raising_kl", "--output-dir", tmp_path / "run",
        env={**env, "MINILLM_FX_FAIL": "detached"},
    )  # fmt: skip
    out = _panel(res)
    assert "divergence 'fixture_raising_kl' (plugin 'raising', distribution fx-raising" in out
    assert "without a gradient" in out and "loss must be a scalar" not in out


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("vector", "not a 0-dim (scalar) tensor"),
        ("seq_detached", "a tensor without a gradient"),
    ],
)
def test_a_broken_sequence_loss_is_a_panel(env, tmp_path, mode, words):
    run = tmp_path / "run"
    res = run_minillm("distill", *SEQUENCE, "--output-dir", run, env={**env, "MINILLM_FX_FAIL": mode})
    out = _panel(res)
    assert "divergence 'fixture_sequence' (plugin 'raising', distribution fx-raising" in out
    assert "returned a broken loss" in out and words in out, out
    _no_checkpoint_debris(run)


def test_the_fixture_plugin_trains_when_nothing_breaks(env, tmp_path):
    """The same plugins with no break: the checks pass a correct sampler and both divergences."""
    res = run_minillm("distill", *TINY_KD, *SAMPLER, "--set", "divergence.name=fixture_raising_kl",
                      "--output-dir", tmp_path / "kd", env=env)  # fmt: skip
    assert res.code == 0, res.output
    res = run_minillm("distill", *SEQUENCE, "--output-dir", tmp_path / "seq", env=env)
    assert res.code == 0, res.output
    assert (tmp_path / "seq" / "final").is_dir()


def test_sampler_metrics_reach_metrics_jsonl_averaged_over_ranks(env, tmp_path):
    """The sampler metrics channel: ``RolloutBatch.metrics`` -> ``sampler/NAME`` in every row, the mean over the
    micro-batches and ranks that report it (rank 0 says a=1, rank 1 a=3 and b=2: a=2, b=2), even when the ranks
    report different names."""
    import json

    run = tmp_path / "run"
    res = run_minillm("distill", *TINY_KD, *SAMPLER, "--nproc", "2", "--output-dir", run,
                      env={**env, "MINILLM_FX_FAIL": "metrics"}, timeout=400)  # fmt: skip
    assert res.code == 0, res.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["sampler/a"], r["sampler/b"]) for r in rows] == [(2.0, 2.0)] * 2


def test_teacher_logprobs_a_divergence_needs_are_checked_before_and_during_training(env, tmp_path):
    """``needs_teacher_logprobs``: a sampler that declares it does not record them is refused by pre-flight
    (exit 3, in `recipes validate` too); one that does not declare it is stopped at its first rollout (exit 3)."""
    div = ("--set", "divergence={name: fixture_sequence_tlp}")
    res = run_minillm("recipes", "validate", *SEQUENCE, *div, "--set", "sampler={name: student, max_new_tokens: 6}",
                      env=env)  # fmt: skip
    assert res.code == 3, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert "needs the teacher's log-probs of the sampled tokens, which sampler 'student'" in flat, flat
    res = run_minillm("distill", *SEQUENCE, *div, "--set", "sampler={name: fixture_undeclared, max_new_tokens: 6}",
                      "--output-dir", tmp_path / "run", env=env)  # fmt: skip
    assert res.code == 3, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    assert "sampler 'fixture_undeclared' did not record (RolloutBatch.teacher_logprobs is None)" in flat
    assert "Traceback" not in res.output
