"""The chunked loss path across 2 processes (DeepSpeed, gloo on the CPU) at ZeRO stages 0 and 3: loss and full
gradients (output layer included, tied and untied) equal a plain full-logits computation over both ranks'
batches. The ranks hold different numbers of valid tokens, so at ZeRO-3 they walk the same number of chunks
(the sharded output layer gathers its weight collectively on every call, recomputation included). Both walks:
chunks of 2 tokens recomputed in backward, and (minillm) one chunk holding every token (plain autograd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from minillm_distill.train.distributed import free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", [0, 3])
@pytest.mark.slow
def test_two_process_chunked_loss_equals_full_logits(tmp_path, stage):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        str(Path(__file__).resolve().parent / "dist_loss_worker.py"), str(stage), str(tmp_path / "out-$RANK.json"),
    ]  # fmt: skip
    # the worker writes its own file: RANK is substituted there
    cmd[-1] = str(tmp_path / "out.json")
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = [json.loads((tmp_path / f"out.json.{r}").read_text()) for r in range(2)]
    for row in rows:
        results = row["results"]
        assert len(results) == 2 * 4 * 3  # families x (divergence, chunk) cases x (loss, grad, head grad)
        # float32, 1e-5 and not test_loss_chunks' 1e-6: besides the chunk's rounding, the ranks' losses and
        # DeepSpeed's gradient all-reduce add up in another order than the one-process reference, and a forward
        # KL between two close random models loses digits to cancellation (measured: fkl loss 4.0e-6, jsd loss
        # 1.6e-6, gradients 1.0-1.4e-6; the float32 full-logits loss alone is 1e-5 from a float64 one)
        bad = {k: v for k, v in results.items() if not v <= 1e-5}
        assert not bad, bad
