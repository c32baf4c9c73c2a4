"""Runtime settings for fast torch inference: intra-op threads and a prepared inference copy of a model.

* :func:`configure_threads` sets torch's intra-op threads (default: the CPUs this process may run on).
* :func:`keep_freed_memory` lets glibc's malloc reuse freed blocks instead of returning them to the OS, so the
  per-frame activations do not cost fresh pages (page faults) on every frame.
* :func:`prepare_for_inference` returns an eval-mode copy of a model for inference only: frozen parameters,
  eval-mode BatchNorm folded into the convolution before it (``fuse_bn``), optionally channels-last weights and
  ``torch.compile`` of the backbone. The caller's model is never changed (training keeps the original), and
  the copy's outputs equal the original's up to float rounding (tests/test_fast_forward*.py).

The models' own inference fast paths (SegFormer/CFFM decoder folding, the MiT stage forward without layout
copies) switch on by themselves whenever a model runs in eval mode without autograd; see
:mod:`vidseg.models.fastpath`. Use this module's functions under ``torch.inference_mode()``.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

import torch
from torch import nn

from vidseg.errors import ConfigError

# A module class states which of its (conv, bn) attribute pairs its forward applies as ``bn(conv(x))`` with a
# class attribute ``conv_bn_pairs``; nothing else is fused by name (a pre-activation block's ``bn1``/``conv1``
# must never be folded).
PAIRS_ATTRIBUTE = "conv_bn_pairs"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads.

    Args:
        threads: number of threads; None: :func:`available_cpus`.

    Returns:
        the number of threads now in use.
    """
    if threads is None:
        threads = available_cpus()
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))
    return torch.get_num_threads()


# glibc mallopt() parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit systems
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20
_TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Process-wide: glibc's malloc keeps freed memory for reuse (blocks up to 32 MiB come from the heap, and up
    to 1 GiB of free heap is kept instead of being returned to the OS).

    Inference allocates and frees the same multi-megabyte activations on every frame (MiT-B0 at 480x864:
    [1, 25920, 128] float32 = 13 MB in the 1/4-scale Mix-FFN). With glibc's defaults many of them come from
    freshly mapped or trimmed pages, which the kernel must fault in and zero again: 7,000-20,000 page faults
    and 13-40 ms of system time per frame for the MiT-B0 encoder on the development machine, which these two
    settings remove (docs/benchmarks.md, issue 13; a few percent of wall time there). The cost: the process's
    resident memory stays at its peak (up to 1 GiB above it) until it exits. Called by the ``vidseg`` CLI;
    library users may call it themselves. Python has no portable interface for this, hence ``ctypes``.

    Returns:
        True when the settings were applied (glibc), False elsewhere (musl, macOS, Windows: nothing changes).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (AttributeError, OSError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Within the block torch runs ``threads`` intra-op threads (:func:`configure_threads`; None: every
    available CPU); the previous count is restored afterwards. Yields the count in use."""
    before = torch.get_num_threads()
    try:
        yield configure_threads(threads)
    finally:
        torch.set_num_threads(before)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it, in place (``conv`` gets a bias).

    ``conv(x)`` then equals ``bn(conv(x))`` of before up to float rounding; ``bn`` itself is left untouched
    (the caller replaces it by an identity).
    """
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else torch.zeros_like(scale)) - bn.running_mean * scale
        weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.weight = nn.Parameter(weight, requires_grad=False)
        conv.bias = nn.Parameter(bias, requires_grad=False)


def _fusable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats
            and bn.running_var is not None and conv.out_channels == bn.num_features)


def fuse_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into it, in place.

    Two patterns are recognised: a Conv2d immediately followed by a BatchNorm2d inside an ``nn.Sequential`` whose
    forward is ``nn.Sequential``'s, and the attribute pairs a module class lists in ``conv_bn_pairs`` (e.g.
    ``(("conv1", "bn1"), ...)``: its forward applies each norm directly to that convolution's output). Only exact
    ``nn.BatchNorm2d`` modules with running statistics are folded (frozen or custom norms are left alone). The
    fused BatchNorm becomes ``nn.Identity``. Only for inference copies: the result cannot be trained.

    Returns:
        the number of BatchNorms folded.
    """
    fused = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
            names = list(module._modules)
            for first, second in zip(names, names[1:]):
                conv, bn = module._modules[first], module._modules[second]
                if _fusable(conv, bn):
                    fuse_conv_bn(conv, bn)
                    module._modules[second] = nn.Identity()
                    fused += 1
        for conv_name, bn_name in getattr(type(module), PAIRS_ATTRIBUTE, ()):
            conv, bn = module._modules.get(conv_name), module._modules.get(bn_name)
            if conv is not None and bn is not None and _fusable(conv, bn):
                fuse_conv_bn(conv, bn)
                module._modules[bn_name] = nn.Identity()
                fused += 1
    return fused


def prepare_for_inference(model: nn.Module, *, channels_last: bool = False, fuse_bn: bool = True,
                          compile: bool = False, copy_model: bool = True) -> nn.Module:  # noqa: A002
    """An inference-only copy of ``model``.

    Args:
        model: any vidseg model (its ``VideoSegmenter`` methods are kept).
        channels_last: store 4-D weights channels-last (helps convolution-heavy models such as ResNet/Swin
            heads on CPU; the MiT fast path already runs its convolutions channels-last).
        fuse_bn: fold eval-mode BatchNorm into the preceding convolution (:func:`fuse_batchnorm`).
        compile: ``torch.compile`` (inductor) the backbone; costs a compile on the first frame of each input
            size (see docs/benchmarks.md for what it gives).
        copy_model: work on a deep copy (default); False changes ``model`` itself.

    Returns:
        the prepared model, in eval mode with ``requires_grad`` off everywhere.
    """
    prepared = copy.deepcopy(model) if copy_model else model
    prepared.eval()
    prepared.requires_grad_(False)
    if fuse_bn:
        fuse_batchnorm(prepared)
    if channels_last:
        prepared.to(memory_format=torch.channels_last)
    if compile:
        target = prepared.backbone if isinstance(getattr(prepared, "backbone", None), nn.Module) else prepared
        target.compile(dynamic=False)
    return prepared
