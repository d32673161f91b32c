"""``grad_norm`` is reported at every ZeRO stage: at ZeRO 0 (where DeepSpeed gives None) minillm computes it
from the reduced gradients before the update, and it equals the norm DeepSpeed reports at ZeRO 2 for the same
run."""

from __future__ import annotations

import json

import pytest
from helpers import run_minillm

pytestmark = pytest.mark.slow


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_grad_norm_at_zero0_equals_deepspeeds_at_zero2(tmp_path):
    norms = {}
    for stage in (0, 2):
        out = tmp_path / f"z{stage}"
        res = run_minillm(
            "distill", "recipes/tiny/kd.yaml", "--output-dir", out,
            "--set", f"engine.zero_stage={stage}", "--set", "train.total_steps=2",
            env={"OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert res.code == 0, res.output
        norms[stage] = [r["grad_norm"] for r in _rows(out)]
    assert all(isinstance(n, float) and n > 0 for n in norms[0]), norms
    assert norms[0] == pytest.approx(norms[2], rel=1e-4)
