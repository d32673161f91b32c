"""Process-group setup for one process or many (torchrun / deepspeed launchers set RANK, WORLD_SIZE...)."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
from typing import Any

import torch
import torch.distributed as dist


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launched_externally() -> bool:
    """Whether a launcher (torchrun, deepspeed, minillm --nproc) started this process as one of its workers."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def init_distributed() -> None:
    """Initialise DeepSpeed's process group; a plain single process gets a local one-member group."""
    from minillm_distill.train.deepspeed_import import import_deepspeed

    deepspeed = import_deepspeed()
    from deepspeed.accelerator import get_accelerator

    backend = get_accelerator().communication_backend_name()
    if not launched_externally():
        # One process: an in-process store, no TCP port to race for. No MASTER_ADDR/MASTER_PORT either, so a
        # process this one starts later (a test, a notebook launching `minillm distill`) does not take itself
        # for a worker of a launcher. DeepSpeed's engine reads LOCAL_RANK from the environment.
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"})
        if not dist.is_initialized():
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    if get_accelerator().device_name() == "cpu" and os.environ.get("MINILLM_DS_SHM", "0") != "1":
        # DeepSpeed's CPU shared-memory all-reduce op is JIT-compiled on first use (~1 min); gloo alone is
        # correct and fast enough for CPU runs. MINILLM_DS_SHM=1 turns it back on.
        import importlib

        # (``import deepspeed.comm.torch as m`` would bind the ``torch`` attribute of deepspeed.comm instead)
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    # with the group above already up, this only sets up DeepSpeed's communication wrapper around it
    deepspeed.init_distributed(dist_backend=backend, verbose=False)
    if get_accelerator().device_name() != "cpu":
        get_accelerator().set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not _AT_EXIT:
        atexit.register(_destroy_process_group)
        _AT_EXIT.append(True)


_AT_EXIT: list[bool] = []  # the exit handler is registered once per process


def _destroy_process_group() -> None:
    """At exit: shut the process group down while the interpreter is whole. Left to interpreter teardown,
    gloo's threads now and then end a finished process in ``std::terminate`` (exit -6 after a successful run)."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def shut_down() -> None:
    """Shut the process group down now (what the exit handler would do), before a process ends itself with
    ``os._exit``: the rest of the interpreter's teardown is where gloo aborts."""
    _destroy_process_group()


# what gloo (and NCCL) say when a collective's peer process has died
_PEER_LOST = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "remote worker crashing",
    "remote process exited",
)


def is_peer_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another worker process is gone."""
    if world_size() <= 1 or not isinstance(exc, RuntimeError | ConnectionError | OSError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _PEER_LOST)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized() and world_size() > 1:
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def all_gather_json(value: Any) -> list[Any]:
    """Every rank's ``value`` (JSON-able: names and numbers), in rank order; ``[value]`` on one process.
    Collective: every rank must call it."""
    if not (dist.is_initialized() and world_size() > 1):
        return [value]
    import json

    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, json.dumps(value))  # text, never a pickled object of a plugin's making
    return [json.loads(text) for text in gathered]
