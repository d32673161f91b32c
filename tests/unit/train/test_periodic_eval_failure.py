"""A failing evaluation during training never loses the steps before it: that step's metrics row and a
checkpoint are written first, so ``--resume`` continues from it."""

from __future__ import annotations

import json

import pytest
from helpers import BENCH_FIXTURES

from minillm_distill.errors import ResourceError
from minillm_distill.train.periodic_eval import PeriodicEval


@pytest.mark.slow
def test_the_step_before_a_failing_evaluation_is_saved(cli, tmp_path, monkeypatch):
    def fail(self, engine, step):
        raise ResourceError(f"cannot write the evaluation of step {step}: no space left on device")

    monkeypatch.setattr(PeriodicEval, "run", fail)
    run = tmp_path / "run"
    res = cli(
        "distill", "recipes/tiny/kd.yaml", "--output-dir", run, "--set", "train.total_steps=6",
        "--set", "train.save_every=100", "--set", "eval.every=3", "--set", "eval.benchmarks=[dolly]",
        "--set", f"eval.data={{dolly: {BENCH_FIXTURES / 'dolly.jsonl'}}}", "--set", "eval.max_new_tokens=8",
        "--set", "eval.limit=2",
    )  # fmt: skip
    assert res.code == 5, res.output
    assert "cannot write the evaluation of step 3" in " ".join(res.output.split())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (run / "checkpoints" / "step-3" / "state.json").is_file()
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-3"
