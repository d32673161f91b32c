"""A one-process run sets up its process group without a TCP port and leaves no launcher variables behind,
so a process it starts later (a test, a notebook running `minillm distill`) is not taken for a launcher's
worker that must meet the others at a port already in use (CI saw EADDRINUSE from exactly that)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = r"""
import os, sys
import torch.distributed as dist
from minillm_distill.train import distributed as d

d.init_distributed()
assert dist.is_initialized() and dist.get_world_size() == 1 and dist.get_rank() == 0
leaked = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k in os.environ]
print("leaked", leaked, "external", d.launched_externally())
import torch
t = torch.ones(3)
dist.all_reduce(t)
print("sum", float(t.sum()))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                              "MASTER_PORT")}  # fmt: skip
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


@pytest.mark.slow
def test_one_process_group_needs_no_port_and_leaks_no_launcher_variables():
    out = subprocess.run([sys.executable, "-c", CHILD], env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "leaked [] external False" in out.stdout
    assert "sum 3.0" in out.stdout


@pytest.mark.slow
def test_inherited_rank_variables_without_a_master_are_not_a_launcher():
    """What a child of a one-process run inherits (RANK, LOCAL_RANK, WORLD_SIZE) must not make it wait for a
    rendezvous."""
    env = _env() | {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "external False" in out.stdout


def test_a_launchers_variables_are_recognised(monkeypatch):
    from minillm_distill.train.distributed import launched_externally

    for k, v in {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)
    assert launched_externally()
    monkeypatch.delenv("MASTER_PORT")
    assert not launched_externally()
