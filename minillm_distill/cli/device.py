"""``--device`` of ``minillm eval`` and ``minillm generate``: one resolver, so both refuse the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minillm_distill.errors import ResourceError, UsageError

if TYPE_CHECKING:
    import torch

DEVICE_HINT = "use auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """``auto`` is a CUDA GPU when there is one, else the CPU; otherwise any name torch knows. A name torch does
    not know is a usage error (exit 2); a CUDA device on a machine without one is a resource error (exit 5)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r} is not a device", hint=DEVICE_HINT) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError(f"--device {name}: no CUDA GPU is available on this machine", hint="use --device cpu")
    return device
