"""Softmax attention for inference on AVX-512 CPUs: a small C kernel (``cpu_attention.c``) with a fallback to
``F.scaled_dot_product_attention``.

Why vidseg has its own kernel: in the MiT encoder (SegFormer, CFFM) attention is about 45% of the inference
time on a CPU (480x864, MiT-B0: 5.2 of 12.05 GFLOP, queries of 32 channels per head against the 405
spatially reduced keys). PyTorch's CPU attention kernel runs these shapes at about half the machine's dense-GEMM
rate; the C kernel keeps a block of query rows' scores in cache, computes them with register-blocked AVX-512
FMAs, and needs 0.75-0.8x of its time (docs/benchmarks.md, issue 13). Neither oneDNN nor PyTorch offers a faster
fused attention for float32 on CPU.

How it is used: :func:`attention_tokens` runs the kernel when :func:`kernel_usable` says it may (float32 CPU
tensors, no tracing/``torch.compile``/autocast, outside :func:`vidseg.models.fastpath.plain_ops`, head width 16,
32, 48 or 64, an AVX-512 CPU as torch reports it, and a working kernel library); otherwise it calls PyTorch's
kernel. The C source is compiled with the system C compiler (``$CC``, else ``cc``) on first use into
``$VIDSEG_KERNEL_CACHE`` (default ``~/.cache/vidseg/kernels``), written atomically under a name that contains
a hash of the source and flags, and checked once per process against a float64 reference on random inputs.
Without a compiler, or if the check fails, the fallback is used (logged once at INFO level).
``VIDSEG_C_KERNELS=0`` turns the kernel off. The outputs equal PyTorch's up to float rounding.

The kernel runs on ``torch.get_num_threads()`` OpenMP threads in tasks of 64 query rows. It is built with
``-fopenmp``, and since PyTorch has already loaded its ``libgomp.so.1`` when the library is opened, the dynamic
linker binds it to that same runtime: torch's ops and the kernel share one pool of worker threads (a separate
pool of Python threads was slower on 2 cores, because torch's OpenMP workers spin-wait after each op).
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

from vidseg.models.fastpath import fused_cpu_kernels_allowed

_LOG = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("cpu_attention.c")
CFLAGS = ("-O3", "-mavx512f", "-mavx512dq", "-mfma", "-fopenmp", "-shared", "-fPIC")
HEAD_WIDTHS = (16, 32, 48, 64)
KEY_PADDING = 32  # the kernel reads the transposed keys 32 columns at a time
_ARGTYPES = ([ctypes.c_int64] * 7 + [ctypes.c_void_p] + [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2
             + [ctypes.c_int64] * 3 + [ctypes.c_void_p] + [ctypes.c_int64] * 3)


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
    target = cache_dir / f"cpu_attention-{digest}.so"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".cpu_attention-", suffix=".so")
    os.close(fd)
    try:
        subprocess.run([compiler, *CFLAGS, "-o", tmp, str(SOURCE)], check=True, capture_output=True, timeout=300)
        os.replace(tmp, target)  # atomic: a concurrent process sees the old state or the whole library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _cpu_has_avx512() -> bool:
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@functools.cache
def _kernel():
    """The checked ``vidseg_attention`` C function, or None (reason logged once)."""
    if not _cpu_has_avx512():
        _LOG.info("CPU attention kernel not used: torch reports no AVX-512 on this CPU")
        return None
    try:
        function = ctypes.CDLL(str(compile_kernel())).vidseg_attention
    except (OSError, subprocess.SubprocessError) as exc:
        _LOG.info("CPU attention kernel not used: it could not be built (%s)", str(exc).splitlines()[0][:200])
        return None
    function.argtypes, function.restype = _ARGTYPES, ctypes.c_int
    if not _self_check(function):
        _LOG.info("CPU attention kernel not used: it failed its check against a float64 reference")
        return None
    return function


def _self_check(function) -> bool:
    """Random inputs covering every head width, a key count that is not a multiple of 16 and a row tail."""
    g = torch.Generator().manual_seed(0)
    for d in HEAD_WIDTHS:
        q, k, v = (torch.randn(2, 2, n, d, generator=g) for n in (11, 37, 37))
        want = torch.softmax(q.double() @ k.double().transpose(-1, -2) * d ** -0.5, -1) @ v.double()
        got = _run(function, q, k, v, d ** -0.5, threads=1).permute(0, 2, 1, 3)
        if not torch.allclose(got.double(), want, atol=1e-5, rtol=1e-4):
            return False
    return True


def kernel_usable(q: torch.Tensor, attention_mask: torch.Tensor | None = None) -> bool:
    """Whether :func:`attention_tokens` will run the C kernel for queries ``q`` [B, H, N, D]."""
    return (attention_mask is None and q.dim() == 4 and q.shape[-1] in HEAD_WIDTHS and q.shape[2] > 0
            and fused_cpu_kernels_allowed(q) and os.environ.get("VIDSEG_C_KERNELS", "1") != "0"
            and _kernel() is not None)


def _run(function, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, threads: int) -> torch.Tensor:
    """The kernel on float32 q [B, H, N, D], k, v [B, H, M, D] (channels contiguous) -> [B, N, H, D]."""
    b, h, n, d = q.shape
    m = k.shape[2]
    q, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, v))
    padded = -(-m // KEY_PADDING) * KEY_PADDING
    keys_t = k.new_zeros(b * h, d, padded)
    keys_t[:, :, :m] = (k * scale).reshape(b * h, m, d).transpose(1, 2)
    out = q.new_empty(b, n, h, d)
    out_bhnd = out.permute(0, 2, 1, 3)

    code = function(threads, b * h, h, n, d, m, padded, q.data_ptr(), *q.stride()[:3], keys_t.data_ptr(),
                    v.data_ptr(), *v.stride()[:3], out.data_ptr(), *out_bhnd.stride()[:3])
    if code != 0:
        raise RuntimeError(f"CPU attention kernel returned {code} for q {tuple(q.shape)}, k {tuple(k.shape)}")
    return out


def attention_tokens(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Multi-head softmax attention for inference, heads concatenated per token.

    Args:
        q: [B, H, N, D] queries.
        k, v: [B, H, M, D] keys and values.
        scale: the factor applied to ``q k^T`` before the softmax.

    Returns:
        [B, N, H * D]: ``softmax(scale q k^T) v`` with the heads side by side (the layout an output projection
        takes), from the C kernel when :func:`kernel_usable`, else from ``F.scaled_dot_product_attention``.
    """
    b, h, n, d = q.shape
    if kernel_usable(q):
        return _run(_kernel(), q, k, v, scale, torch.get_num_threads()).view(b, n, h * d)
    return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(b, n, h * d)
