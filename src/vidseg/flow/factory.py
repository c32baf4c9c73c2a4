"""One place that turns user options (``--flow``, ``--flow-weights``, ``--flow-cache``, ``--device``) into a backend."""

from __future__ import annotations

import os
from typing import Any

import torch

from vidseg.errors import ConfigError
from vidseg.flow.backends import make_flow_backend
from vidseg.flow.cache import CachedFlow
from vidseg.flow.raft_backend import RAFTFlow

RAFT_SPECS = {"raft": None, "raft-standard": "standard", "raft-small": "small"}


def check_device(device: str) -> str:
    """Validate a torch device name; ConfigError when CUDA is asked for and not available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but this PyTorch has no usable CUDA device")
    return device


def build_flow_backend(spec: Any = "dis", *, weights: str | os.PathLike | None = None, device: str = "cpu",
                       cache: str | os.PathLike | None = None, iters: int = 20, padding: str = "zeros") -> Any:
    """Build a flow backend.

    Args:
        spec: ``dis``, ``dis:<preset>``, ``raft`` (variant from the weights), ``raft-standard``, ``raft-small``,
            a folder of flow files, a callable or a backend object.
        weights: RAFT checkpoint (required for ``raft*``, refused otherwise).
        device: torch device for RAFT (``cpu``, ``cuda``, ``cuda:1``).
        cache: folder of the on-disk flow cache (:class:`~vidseg.flow.cache.CachedFlow`), or None.
        iters: RAFT refinement iterations.
        padding: RAFT input padding, ``zeros`` (VSPW TC_cal.py) or ``replicate`` (upstream RAFT).

    Returns:
        a backend: ``backend(frame_t, frame_t1, *, video, stem_t, stem_t1) -> [H, W, 2]``.
    """
    if isinstance(spec, str) and spec in RAFT_SPECS:
        if weights is None:
            raise ConfigError(f"--flow {spec} needs --flow-weights (a local RAFT checkpoint, e.g. raft-things.pth)")
        backend = RAFTFlow(weights, variant=RAFT_SPECS[spec], iters=iters, device=check_device(device), padding=padding)
    else:
        if weights is not None:
            raise ConfigError(f"--flow-weights is for --flow raft; the flow {spec!r} takes no weights")
        backend = make_flow_backend(spec)
    return CachedFlow(backend, cache) if cache is not None else backend
