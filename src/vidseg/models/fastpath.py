"""When the models take their inference fast paths, and a switch back to the reference forward.

Several modules (the MiT encoder, the SegFormer/CFFM decoder) have a second, faster forward for inference that
gives the same outputs up to float rounding: it folds eval-mode BatchNorm and linear layers that commute with
bilinear resizing into cached weights and avoids memory-layout copies. It is taken only when the module is in
eval mode and autograd is off (``torch.no_grad()`` / ``torch.inference_mode()``), so training and anything that
needs gradients run the reference forward unchanged. :func:`reference_path` turns the fast paths off (parity
tests and before/after benchmarks).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

_REFERENCE_DEPTH = [0]  # > 0 inside reference_path()
_PLAIN_DEPTH = [0]  # > 0 inside plain_ops()


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


def tensor_version(tensor: torch.Tensor) -> int:
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
    if torch.compiler.is_compiling():  # traced: computed in the graph (a Python-side cache would force recompiles)
        return make()
    key = tuple((id(p), p.data_ptr(), tensor_version(p), p.device, p.dtype) for p in params)
    cache = module.__dict__.setdefault("_fast_path_cache", {})
    if cache.get(kind, (None,))[0] != key:
        cache[kind] = (key, make())
    return cache[kind][1]


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> tokens [B, H*W, C]; a view when ``x`` is in channels-last memory."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Tokens [B, H*W, C] -> the channels-last view [B, C, H, W] of the same memory."""
    return tokens.view(tokens.shape[0], height, width, -1).permute(0, 3, 1, 2)


@contextmanager
def plain_ops() -> Iterator[None]:
    """Inside the block the fast paths use plain PyTorch ops instead of fused CPU kernels (same values
    up to float rounding): for FLOP counting (``torch.utils.flop_counter`` does not know the fused kernels) and
    comparisons. Tracing (ONNX export) and ``torch.compile`` get the plain ops without it."""
    _PLAIN_DEPTH[0] += 1
    try:
        yield
    finally:
        _PLAIN_DEPTH[0] -= 1


@functools.cache
def onednn_kernels_work() -> bool:
    """Whether this torch build has oneDNN's fused CPU kernels and they compute what the plain ops do (checked
    once on tiny inputs: the ops are internal to PyTorch, so a build that lacks or changed them falls back)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        return False
    g = torch.Generator().manual_seed(0)
    x, w, b, r = (torch.randn(*shape, generator=g) for shape in ((1, 5, 8), (6, 8), (6,), (1, 5, 6)))
    image, kernel = torch.randn(1, 4, 5, 5, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    try:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):  # compare float32 with float32
            ops = torch.ops.mkldnn
            got = [ops._linear_pointwise(x, w, b, "none", [], ""), ops._linear_pointwise(x, w, b, "gelu", [], "none"),
                   ops._linear_pointwise.binary(x, r, w, b, "add"),
                   ops._convolution_pointwise(image, kernel, b[:4], [1, 1], [1, 1], [1, 1], 4, "gelu", [], "none")]
            want = [F.linear(x, w, b), F.gelu(F.linear(x, w, b)), F.linear(x, w, b) + r,
                    F.gelu(F.conv2d(image, kernel, b[:4], 1, 1, 1, 4))]
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return all(torch.allclose(a, e, atol=1e-5, rtol=1e-5) for a, e in zip(got, want, strict=True))


def fused_cpu_kernels_allowed(x: torch.Tensor) -> bool:
    """True when fused CPU kernels (oneDNN's, vidseg's C kernels) may run on ``x``: float32 on the CPU,
    outside :func:`plain_ops`, TorchScript tracing, ``torch.compile`` (which fuses by itself) and CPU autocast
    (whose bfloat16 the plain ops follow)."""
    return (_PLAIN_DEPTH[0] == 0 and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu"))


def _onednn_fusion(x: torch.Tensor) -> bool:
    """True when oneDNN's fused CPU kernels (the ones inductor's CPU backend calls) should run on ``x``
    (:func:`fused_cpu_kernels_allowed`), on a build where they work (:func:`onednn_kernels_work`)."""
    return fused_cpu_kernels_allowed(x) and onednn_kernels_work()


def linear_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               residual: torch.Tensor | None = None, *, gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, then the erf GELU (``gelu``) or ``+ residual``, for inference:
    [..., C_in] -> [..., C_out].

    On a float32 CPU tensor this is one oneDNN call with the bias and the GELU or the residual sum fused into the
    GEMM (``F.linear`` first copies the bias into its output and then adds the product, and the GELU or the
    residual add is another pass over memory); elsewhere the plain ops. ``residual``: [..., C_out].
    """
    if gelu and residual is not None:
        raise ValueError("linear_add fuses either the GELU or the residual sum, not both")
    if _onednn_fusion(x):
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual.contiguous(), weight, bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    out = F.linear(x, weight, bias)
    if gelu:
        return F.gelu(out)
    return out if residual is None else out.add_(residual)


def is_exact_gelu(activation: nn.Module) -> bool:
    """True for the erf GELU (``nn.GELU()`` or transformers' ``GELUActivation`` calling ``F.gelu``)."""
    if isinstance(activation, nn.GELU):
        return activation.approximate == "none"
    return getattr(activation, "act", None) is F.gelu


def conv2d_gelu(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor) -> torch.Tensor:
    """``F.gelu(conv(x))`` (erf GELU) for inference, with ``weight`` in place of ``conv.weight`` (e.g. its
    channels-last copy). [B, C_in, H, W] -> [B, C_out, H', W']. On a float32 CPU tensor the GELU runs inside
    oneDNN's convolution (one pass over the output instead of two); elsewhere the plain ops."""
    if _onednn_fusion(x) and isinstance(conv.padding, tuple):
        return torch.ops.mkldnn._convolution_pointwise(x, weight, conv.bias, list(conv.padding), list(conv.stride),
                                                       list(conv.dilation), conv.groups, "gelu", [], "none")
    return F.gelu(F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups))
