"""Exact resume under ``--nproc 2`` with a sampler whose state differs per rank: each rank's sampler state is
saved beside its rollout buffer and restored to that rank, so steps 3 and 4 after a resume from step 2 have the
very losses of an uninterrupted run (they differed when every rank got rank 0's state)."""

from __future__ import annotations

import json

from helpers import PLUGIN_FIXTURES, run_minillm


def _env(install_plugin) -> dict[str, str]:
    env = install_plugin("fx_stateful", distribution="fx-stateful", name="stateful", path=PLUGIN_FIXTURES)
    return {**env, "OMP_NUM_THREADS": "1"}


def _losses(run) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_resume_restores_each_ranks_sampler_state(tmp_path, install_plugin):
    env = _env(install_plugin)
    common = (
        "distill", "recipes/tiny/kd.yaml", "--nproc", "2", "--set", "sampler.name=fixture_stateful",
        "--set", "train.total_steps=4", "--set", "train.save_every=2", "--set", "train.micro_batch_size=2",
    )  # fmt: skip
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert (res := run_minillm(*common, "--output-dir", str(straight), env=env, timeout=400)).code == 0, res.output
    assert (res := run_minillm(*common, "--output-dir", str(split), "--max-steps", "2", env=env)).code == 0, res.output
    payloads = sorted(p.name for p in (split / "checkpoints" / "step-2").glob("payload-rank*.json"))
    assert payloads == ["payload-rank0.json", "payload-rank1.json"]
    states = [json.loads((split / "checkpoints" / "step-2" / p).read_text()) for p in payloads]
    assert states[0] != states[1]  # the ranks' sampler states differ: both are kept
    assert (res := run_minillm(*common, "--output-dir", str(split), "--resume", env=env, timeout=400)).code == 0
    a, b = _losses(straight), _losses(split)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    assert [b[s] for s in (1, 2, 3, 4)] == [a[s] for s in (1, 2, 3, 4)], (a, b)
