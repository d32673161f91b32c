"""``--device`` of ``eval`` and ``generate`` is resolved once, the same way: an unknown name is a usage error
(exit 2), a CUDA device on a machine without one a resource error (exit 5); both before any model is read (the
two commands used to disagree: exit 2 against 5)."""

from __future__ import annotations

import pytest
import torch

from minillm_distill.cli.device import resolve_device
from minillm_distill.errors import ExitCode, ResourceError, UsageError

NO_CUDA = not torch.cuda.is_available()


def test_auto_and_named_devices():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="not a device"):
        resolve_device("gpu0")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_resource_error():
    with pytest.raises(ResourceError, match="no CUDA GPU"):
        resolve_device("cuda:1")


@pytest.mark.parametrize(
    ("device", "code"),
    [
        ("gpu0", ExitCode.USAGE),
        pytest.param("cuda", ExitCode.RESOURCE, marks=pytest.mark.skipif(not NO_CUDA, reason="GPU")),
    ],
)
def test_eval_and_generate_refuse_the_same_way_before_loading(cli, tmp_path, device, code):
    missing = tmp_path / "no-model"  # would be exit 5 if it were looked at first
    result = cli("generate", "--model", missing, "-p", "hi", "--device", device)
    assert result.code == code, result.output
    assert "--device" in result.stderr and "Traceback" not in result.output
    result = cli("eval", "--bench", "dolly", "--model", missing, "--device", device)
    assert result.code == code, result.output
    assert "--device" in result.stderr and "Traceback" not in result.output
