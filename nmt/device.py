"""Which device to run on: a name from the command line or a config, checked once."""

from __future__ import annotations

import torch

from nmt.errors import NmtError


def check_device(name: str) -> torch.device:
    """A device to run on, refused in one line if it is not a device name or not present."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NmtError(f"--device {name!r}: not a device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NmtError(f"--device {name!r}: no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise NmtError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA devices")
    return device


def resolve_device(name: str) -> torch.device:
    """training.device: "auto" is a GPU where there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NmtError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)
