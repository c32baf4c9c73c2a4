"""When the models take their inference fast paths, and a switch back to the reference forward.

Several modules (the MiT encoder, the SegFormer/CFFM decoder) have a second, faster forward for inference that
gives the same outputs up to float rounding: it folds eval-mode BatchNorm and linear layers that commute with
bilinear resizing into cached weights and avoids memory-layout copies. It is taken only when the module is in
eval mode and autograd is off (``torch.no_grad()`` / ``torch.inference_mode()``), so training and anything that
needs gradients run the reference forward unchanged. :func:`reference_path` turns the fast paths off (parity
tests and before/after benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_REFERENCE_DEPTH = [0]  # > 0 inside reference_path()


def use_fast_path(module: nn.Module) -> bool:
    """True when ``module`` should run its inference fast path: eval mode, autograd off, no reference_path()."""
    return not module.training and not torch.is_grad_enabled() and _REFERENCE_DEPTH[0] == 0


@contextmanager
def reference_path() -> Iterator[None]:
    """Run the reference (training-identical) forward of every model inside the ``with`` block."""
    _REFERENCE_DEPTH[0] += 1
    try:
        yield
    finally:
        _REFERENCE_DEPTH[0] -= 1


def _version(tensor: torch.Tensor) -> int:
    """The tensor's version counter; -1 for inference tensors (created under inference mode), which have none."""
    try:
        return tensor._version
    except RuntimeError:
        return -1


def cached_weights(module: nn.Module, kind: str, params: tuple[torch.Tensor, ...], make):
    """A value derived from ``params`` (folded weights), rebuilt when any of them changes.

    The key is each tensor's identity, storage address, version counter, device and dtype, so loading a state
    dict, an optimiser step or ``.to()`` invalidates it. Only for use under autograd-free inference.
    """
    key = tuple((id(p), p.data_ptr(), _version(p), p.device, p.dtype) for p in params)
    cache = module.__dict__.setdefault("_fast_path_cache", {})
    if cache.get(kind, (None,))[0] != key:
        cache[kind] = (key, make())
    return cache[kind][1]
