"""vidseg's CPU kernels for the inference fast paths of the MiT encoder (softmax attention, LayerNorm, the fused
Mix-FFN) and of CFFM's windowed attention, in C (``cpu_kernels.c``, float32, AVX-512), each with a fallback to
the PyTorch ops.

Why vidseg has its own kernels: in the MiT encoder (SegFormer, CFFM) attention is about 45% of the inference
time on a CPU (480x864, MiT-B0: 5.2 of 12.05 GFLOP, queries of 32 channels per head against the 405
spatially reduced keys), and PyTorch's CPU attention kernel runs these shapes at about half the machine's
dense-GEMM rate; the C kernel keeps a block of query rows' scores in cache and computes them with
register-blocked AVX-512 FMAs, in about 0.8x the time. PyTorch's LayerNorm over the encoder's 32-160 channels
takes 2-3x the time of the C kernel, which holds each row in registers. The Mix-FFN (fc1, 3x3 depthwise conv,
erf GELU, fc2) writes and reads back a hidden activation of 4x the channels (13 MB per 1/4-scale block at
480x864) between oneDNN's ops; the fused kernel streams the map row by row and keeps that activation in cache
(1.2-1.4x on the 1/4 and 1/8 scales). CFFM's attention gathers 289 keys and values for each of its 7x7 query
windows from a token table (85 MB written and read back at 480x853); the windowed kernel gathers each window's
keys into cache-resident buffers instead (1.5x for the whole attention module). Neither oneDNN nor PyTorch offers
faster float32 CPU versions of these ops (measured in docs/benchmarks.md, issue 13).

How they are used: :func:`attention_tokens`, :func:`layer_norm`, :func:`mix_ffn` and :func:`window_attention`
run the C kernels when :func:`kernels_usable` says they may (autograd off, float32 CPU tensors, no
tracing/``torch.compile``/autocast, outside :func:`vidseg.models.fastpath.plain_ops`, ``VIDSEG_C_KERNELS`` not
``0``, an AVX-512 CPU as torch reports it, and a working library) and the shapes fit (head width 16, 32, 48 or
64; LayerNorm over a multiple of 16 channels up to 512; Mix-FFN channels a multiple of 32, hidden width up to
:data:`MIX_FFN_MAX_HIDDEN`); otherwise the PyTorch ops run. The C source is compiled with the system C
compiler (``$CC``, else ``cc``) on first use into ``$VIDSEG_KERNEL_CACHE`` (default ``~/.cache/vidseg/kernels``), written atomically under a name
that contains a hash of the source and flags, and checked once per process against float64 references on
random inputs. Without a compiler, or if the check fails, the fallbacks are used (logged once at INFO level).
The outputs equal PyTorch's up to float rounding (the GELU's erf is a polynomial fit with an absolute error
below 1.5e-7; the kernels flush denormals to zero while they run).

The kernels run on ``torch.get_num_threads()`` OpenMP threads. The library is built with ``-fopenmp``, and
since PyTorch has already loaded its ``libgomp.so.1`` when the library is opened, the dynamic linker binds it to
that same runtime: torch's ops and the kernels share one pool of worker threads (a separate pool of Python
threads was slower on 2 cores, because torch's OpenMP workers spin-wait after each op).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from vidseg.models.fastpath import cached_weights, fused_cpu_kernels_allowed

_LOG = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("cpu_kernels.c")
CFLAGS = ("-O3", "-mavx512f", "-mavx512dq", "-mfma", "-fopenmp", "-shared", "-fPIC")
HEAD_WIDTHS = (16, 32, 48, 64)
KEY_PADDING = 32  # the kernel reads the transposed keys 32 columns at a time
# The fused Mix-FFN is used up to this hidden width: above it (MiT-B0's 1/32 stage, hidden 1024) oneDNN's GEMMs
# are faster than the kernel's (docs/benchmarks.md, issue 13).
MIX_FFN_MAX_HIDDEN = 640
# ctypes signatures of the C functions (int64 sizes and strides, pointers, eps as double)
_ATTENTION_ARGS = ([ctypes.c_int64] * 7 + [ctypes.c_void_p] + [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2
                   + [ctypes.c_int64] * 3 + [ctypes.c_void_p] + [ctypes.c_int64] * 3)
_LAYER_NORM_ARGS = ([ctypes.c_int64] * 3 + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_double, ctypes.c_void_p, ctypes.c_int64])
_MIX_FFN_ARGS = [ctypes.c_int64] * 6 + [ctypes.c_void_p] * 9
_WINDOW_ATTENTION_ARGS = ([ctypes.c_int64] * 6 + [ctypes.c_void_p] + [ctypes.c_int64] * 3 + [ctypes.c_void_p]
                          + [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2 + [ctypes.c_int64, ctypes.c_double]
                          + [ctypes.c_void_p] + [ctypes.c_int64] * 3)


def kernel_cache_dir() -> Path:
    """Where compiled kernels are kept: ``$VIDSEG_KERNEL_CACHE``, else ``~/.cache/vidseg/kernels``."""
    return Path(os.environ.get("VIDSEG_KERNEL_CACHE") or Path.home() / ".cache" / "vidseg" / "kernels")


def compile_kernel(cache_dir: Path | None = None) -> Path:
    """The compiled kernel library, built now unless the cache already has it for this source and flags.

    Raises:
        OSError / subprocess.CalledProcessError / subprocess.TimeoutExpired: no compiler, or it failed.
    """
    cache_dir = kernel_cache_dir() if cache_dir is None else cache_dir
    compiler = os.environ.get("CC") or "cc"
    digest = hashlib.sha1(SOURCE.read_bytes() + " ".join((compiler, *CFLAGS)).encode()).hexdigest()[:16]
    target = cache_dir / f"cpu_kernels-{digest}.so"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".cpu_kernels-", suffix=".so")
    os.close(fd)
    try:
        subprocess.run([compiler, *CFLAGS, "-o", tmp, str(SOURCE)], check=True, capture_output=True, timeout=300)
        os.replace(tmp, target)  # atomic: a concurrent process sees the old state or the whole library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _cpu_has_avx512() -> bool:
    """Whether torch's CPU capability is one of the AVX-512 levels (the library is built for AVX512F/DQ)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


class _Library:
    """The checked C functions."""

    def __init__(self, path: Path) -> None:
        library = ctypes.CDLL(str(path))
        self.attention, self.layer_norm = library.vidseg_attention, library.vidseg_layer_norm
        self.mix_ffn, self.window_attention = library.vidseg_mix_ffn, library.vidseg_window_attention
        self.attention.argtypes, self.attention.restype = _ATTENTION_ARGS, ctypes.c_int
        self.layer_norm.argtypes, self.layer_norm.restype = _LAYER_NORM_ARGS, ctypes.c_int
        self.mix_ffn.argtypes, self.mix_ffn.restype = _MIX_FFN_ARGS, ctypes.c_int
        self.window_attention.argtypes = _WINDOW_ATTENTION_ARGS
        self.window_attention.restype = ctypes.c_int


@functools.cache
def _library() -> _Library | None:
    """The built and checked kernels, or None (reason logged once)."""
    if not _cpu_has_avx512():
        _LOG.info("vidseg CPU kernels not used: torch reports no AVX-512 on this CPU")
        return None
    try:
        library = _Library(compile_kernel())
    except (OSError, AttributeError, subprocess.SubprocessError) as exc:
        _LOG.info("vidseg CPU kernels not used: they could not be built (%s)", str(exc).splitlines()[0][:200])
        return None
    try:
        passed = _self_check(library)
    except RuntimeError:  # a kernel returned an error code
        passed = False
    if not passed:
        _LOG.info("vidseg CPU kernels not used: they failed their check against float64 references")
        return None
    return library


def _self_check(library: _Library) -> bool:
    """Random inputs covering every head width, a key count that is not a multiple of 16, a row tail,
    LayerNorm over 16..512 channels, the fused Mix-FFN and the windowed attention."""
    g = torch.Generator().manual_seed(0)
    for d in HEAD_WIDTHS:
        q, k, v = (torch.randn(2, 2, n, d, generator=g) for n in (11, 37, 37))
        want = torch.softmax(q.double() @ k.double().transpose(-1, -2) * d ** -0.5, -1) @ v.double()
        got = _attention(library, q, k, v, d ** -0.5, threads=1).permute(0, 2, 1, 3)
        if not torch.allclose(got.double(), want, atol=1e-5, rtol=1e-4):
            return False
    for c in (16, 48, 512):
        x, w, b = torch.randn(7, c, generator=g), torch.randn(c, generator=g), torch.randn(c, generator=g)
        want = F.layer_norm(x.double(), (c,), w.double(), b.double(), 1e-6)
        if not torch.allclose(_layer_norm(library, x, w, b, 1e-6, threads=1).double(), want, atol=1e-5, rtol=1e-4):
            return False
    return _mix_ffn_check(library, g) and _window_attention_check(library, g)


def _mix_ffn_check(library: _Library, g: torch.Generator) -> bool:
    """The fused Mix-FFN on a 3 x 5 map, 32 -> 128 -> 32 channels, against float64 ops."""
    c, hidden, height, width = 32, 128, 3, 5
    x, res = torch.randn(1, height * width, c, generator=g), torch.randn(1, height * width, c, generator=g)
    w1, b1, w2, b2 = (0.3 * torch.randn(*s, generator=g) for s in ((hidden, c), (hidden,), (c, hidden), (c,)))
    wd, bd = 0.3 * torch.randn(hidden, 1, 3, 3, generator=g), torch.randn(hidden, generator=g)
    h = F.linear(x.double(), w1.double(), b1.double()).view(1, height, width, hidden).permute(0, 3, 1, 2)
    act = F.gelu(F.conv2d(h, wd.double(), bd.double(), padding=1, groups=hidden)).permute(0, 2, 3, 1)
    want = F.linear(act.reshape(1, -1, hidden), w2.double(), b2.double()) + res.double()
    out = _mix_ffn(library, x, res, height, width, _mix_ffn_weights(w1, b1, wd, bd, w2, b2), threads=1)
    return torch.allclose(out.double(), want, atol=1e-4, rtol=1e-4)


def _window_attention_check(library: _Library, g: torch.Generator) -> bool:
    """Windowed attention over gathered rows (3 windows, 2 heads of 32, 9 queries, 21 keys) against float64."""
    heads, d, nq, m = 2, 32, 9, 21
    q = torch.randn(3, heads, nq, d, generator=g)
    table, rows = torch.randn(30, 2 * heads * d, generator=g), torch.randint(0, 30, (3, m), generator=g)
    bias = torch.randn(1, heads, nq, m, generator=g)
    keys = table[rows].view(3, m, 2, heads, d).permute(2, 0, 3, 1, 4).double()  # [2, 3, heads, m, d]
    logits = q.double() @ keys[0].transpose(-1, -2) * d ** -0.5 + bias.double()
    want = (torch.softmax(logits, -1) @ keys[1]).transpose(1, 2).reshape(3, nq, heads * d)
    out = _window_attention(library, q, table, rows, bias, d ** -0.5, threads=1)
    return torch.allclose(out.double(), want, atol=1e-5, rtol=1e-4)


def _check(code: int, kernel: str, x: torch.Tensor) -> None:
    """Raise when a kernel returned an error code (-1: sizes it does not support, -2: out of memory); the
    wrappers check sizes first, so this means a bug or memory exhaustion."""
    if code != 0:
        raise RuntimeError(f"vidseg {kernel} kernel returned {code} for input {tuple(x.shape)}")


def kernels_usable(x: torch.Tensor) -> bool:
    """Whether the C kernels may run on ``x`` (shape limits aside): autograd off (they have no backward), and
    the conditions in the module docstring."""
    return (not torch.is_grad_enabled() and fused_cpu_kernels_allowed(x)
            and os.environ.get("VIDSEG_C_KERNELS", "1") != "0" and _library() is not None)


def attention_usable(q: torch.Tensor) -> bool:
    """Whether :func:`attention_tokens` will run the C kernel for queries ``q`` [B, H, N, D]."""
    return q.dim() == 4 and q.shape[-1] in HEAD_WIDTHS and q.shape[2] > 0 and kernels_usable(q)


def _attention(library: _Library, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
               threads: int) -> torch.Tensor:
    """The kernel on float32 q [B, H, N, D], k, v [B, H, M, D] (channels contiguous) -> [B, N, H, D]."""
    b, h, n, d = q.shape
    m = k.shape[2]
    q, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, v))
    padded = -(-m // KEY_PADDING) * KEY_PADDING
    keys_t = k.new_zeros(b * h, d, padded)
    keys_t[:, :, :m] = (k * scale).reshape(b * h, m, d).transpose(1, 2)
    out = q.new_empty(b, n, h, d)
    out_bhnd = out.permute(0, 2, 1, 3)
    code = library.attention(threads, b * h, h, n, d, m, padded, q.data_ptr(), *q.stride()[:3], keys_t.data_ptr(),
                             v.data_ptr(), *v.stride()[:3], out.data_ptr(), *out_bhnd.stride()[:3])
    _check(code, "attention", q)
    return out


def attention_tokens(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Multi-head softmax attention for inference, heads concatenated per token.

    Args:
        q: [B, H, N, D] queries.
        k, v: [B, H, M, D] keys and values.
        scale: the factor applied to ``q k^T`` before the softmax.

    Returns:
        [B, N, H * D]: ``softmax(scale q k^T) v`` with the heads side by side (the layout an output projection
        takes), from the C kernel when :func:`attention_usable`, else from ``F.scaled_dot_product_attention``.
    """
    b, h, n, d = q.shape
    if attention_usable(q):
        return _attention(_library(), q, k, v, scale, torch.get_num_threads()).view(b, n, h * d)
    return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(b, n, h * d)


def _layer_norm(library: _Library, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                threads: int) -> torch.Tensor:
    """The kernel on float32 x [..., C] -> [..., C] (contiguous)."""
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    out = torch.empty(x.shape, dtype=x.dtype)
    weight, bias = weight.contiguous(), bias.contiguous()
    code = library.layer_norm(threads, rows.shape[0], c, rows.data_ptr(), rows.stride(0), weight.data_ptr(),
                              bias.data_ptr(), eps, out.data_ptr(), c)
    _check(code, "layer-norm", x)
    return out


def layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """``norm(x)`` for inference: [..., C] -> [..., C], from the C kernel when :func:`kernels_usable` and the
    norm is over the last dimension with a weight and a bias, C a multiple of 16 up to 512; else ``norm(x)``."""
    c = x.shape[-1]
    if (norm.normalized_shape == (c,) and norm.weight is not None and norm.bias is not None and c % 16 == 0
            and 16 <= c <= 512 and x.numel() > 0 and kernels_usable(x)):
        return _layer_norm(_library(), x, norm.weight, norm.bias, norm.eps, torch.get_num_threads())
    return norm(x)


def _depthwise_3x3(conv: torch.nn.Module, channels: int) -> bool:
    """True for a 3x3 depthwise convolution, stride 1, padding 1, with a bias, on ``channels`` channels."""
    return (isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == channels == conv.in_channels
            and conv.out_channels == channels and conv.bias is not None and conv.padding_mode == "zeros")


def mix_ffn_usable(x: torch.Tensor, fc1: torch.nn.Linear, dwconv: torch.nn.Conv2d, fc2: torch.nn.Linear) -> bool:
    """Whether :func:`mix_ffn` will run the fused kernel on tokens ``x`` [B, N, C]."""
    c, hidden = x.shape[-1], fc1.out_features
    return (x.dim() == 3 and c % 32 == 0 and hidden % 32 == 0 and hidden <= MIX_FFN_MAX_HIDDEN
            and fc1.in_features == c and fc2.in_features == hidden and fc2.out_features == c
            and fc1.bias is not None and fc2.bias is not None and _depthwise_3x3(dwconv, hidden)
            and kernels_usable(x))


def mix_ffn(x: torch.Tensor, residual: torch.Tensor, height: int, width: int, fc1: torch.nn.Linear,
            dwconv: torch.nn.Conv2d, fc2: torch.nn.Linear) -> torch.Tensor | None:
    """``residual + fc2(GELU(dwconv(fc1(x))))`` (erf GELU; the SegFormer Mix-FFN) in one pass over the map.

    The kernel streams the map row by row and keeps three rows of the hidden activation (``4 C`` channels) in
    cache, so the [B, H, W, 4C] tensors that the separate ops write and read back never reach memory.

    Args:
        x: [B, H*W, C] tokens of an ``height`` x ``width`` map (the LayerNorm output).
        residual: [B, H*W, C], added to the output.
        fc1, dwconv, fc2: the Mix-FFN's layers (``C -> hidden``, 3x3 depthwise, ``hidden -> C``).

    Returns:
        [B, H*W, C], or None when :func:`mix_ffn_usable` is false (the caller runs the ops).
    """
    if not mix_ffn_usable(x, fc1, dwconv, fc2) or x.shape[1] != height * width or residual.shape != x.shape:
        return None
    params = (fc1.weight, fc1.bias, dwconv.weight, dwconv.bias, fc2.weight, fc2.bias)
    weights = cached_weights(dwconv, "mix_ffn", params, lambda: _mix_ffn_weights(*params))
    return _mix_ffn(_library(), x, residual, height, width, weights, torch.get_num_threads())


def _mix_ffn_weights(w1: torch.Tensor, b1: torch.Tensor, wd: torch.Tensor, bd: torch.Tensor, w2: torch.Tensor,
                     b2: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The layers' weights in the kernel's layout: fc1 [C, hidden], its bias, the depthwise taps [9, hidden]
    (tap-major), their bias, fc2 [hidden, C], its bias; all contiguous."""
    return (w1.t().contiguous(), b1.contiguous(), wd.reshape(wd.shape[0], 9).t().contiguous(), bd.contiguous(),
            w2.t().contiguous(), b2.contiguous())


def _mix_ffn(library: _Library, x: torch.Tensor, residual: torch.Tensor, height: int, width: int,
             weights: tuple[torch.Tensor, ...], threads: int) -> torch.Tensor:
    """The kernel on x, residual [B, H*W, C] with weights from :func:`_mix_ffn_weights` -> [B, H*W, C]."""
    x, residual = x.contiguous(), residual.contiguous()
    out = torch.empty_like(residual)
    hidden = weights[0].shape[1]
    code = library.mix_ffn(threads, x.shape[0], height, width, x.shape[2], hidden, x.data_ptr(),
                           *(w.data_ptr() for w in weights), residual.data_ptr(), out.data_ptr())
    _check(code, "Mix-FFN", x)
    return out


def window_attention(q: torch.Tensor, table: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor,
                     scale: float) -> torch.Tensor | None:
    """Attention of query windows over keys and values gathered from a token table, for inference (CFFM).

    For every window w and head h: ``softmax(scale q[w, h] k^T + bias[w % W', h]) v`` with k, v the table rows
    ``rows[w]``. The kernel gathers each window's keys and values into cache-resident buffers itself, so the
    gathered [W, heads, M, D] keys and values are never written to memory.

    Args:
        q: [W, heads, Q, D] queries (channels contiguous).
        table: [T, 2C] tokens, C = heads * D: keys in columns [0, C), values in [C, 2C), head h at h * D.
        rows: [W, M] int64 table rows of each window's keys.
        bias: [W', heads, Q, M] additive bias with W a multiple of W' (window w uses ``bias[w % W']``).
        scale: the factor applied to ``q k^T``.

    Returns:
        [W, Q, heads * D], or None when the kernel cannot run (:func:`kernels_usable`, shapes, dtypes); the
        caller then gathers and runs ``F.scaled_dot_product_attention``.
    """
    w, heads, nq, d = q.shape
    m = rows.shape[-1]
    fits = (d in HEAD_WIDTHS and q.stride(-1) == 1 and table.dim() == 2 and table.shape[1] == 2 * heads * d
            and table.dtype == q.dtype and rows.dtype == torch.int64 and rows.shape == (w, m) and m > 0
            and bias.dtype == q.dtype and bias.dim() == 4 and bias.shape[1:] == (heads, nq, m)
            and w % bias.shape[0] == 0)
    if not fits or not kernels_usable(q):
        return None
    return _window_attention(_library(), q, table, rows, bias, scale, torch.get_num_threads())


def _window_attention(library: _Library, q: torch.Tensor, table: torch.Tensor, rows: torch.Tensor,
                      bias: torch.Tensor, scale: float, threads: int) -> torch.Tensor:
    """The kernel on the inputs of :func:`window_attention` (already checked) -> [W, Q, heads * D]."""
    w, heads, nq, d = q.shape
    table, rows, bias = table.contiguous(), rows.contiguous(), bias.contiguous()
    out = q.new_empty(w, nq, heads, d)
    out_whqd = out.permute(0, 2, 1, 3)
    code = library.window_attention(
        threads, w, heads, nq, d, rows.shape[1], q.data_ptr(), *q.stride()[:3], table.data_ptr(), table.stride(0),
        0, heads * d, rows.data_ptr(), bias.data_ptr(), bias.shape[0], scale, out.data_ptr(), *out_whqd.stride()[:3])
    _check(code, "window attention", q)
    return out.view(w, nq, heads * d)
