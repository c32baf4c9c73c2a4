"""The C attention kernel of the MiT fast path (vidseg.models.ops.cpu_attention) against a float64 brute force,
its fallback, its build cache, and the MiT encoder with it against the reference forward."""

import pytest
import torch
import torch.nn.functional as F

from vidseg.inference.runtime import torch_threads
from vidseg.models.backbones.mit import MiT
from vidseg.models.fastpath import plain_ops, reference_path
from vidseg.models.ops import cpu_attention

needs_kernel = pytest.mark.skipif(cpu_attention._kernel() is None,
                                  reason="no AVX-512 CPU or no C compiler: the kernel is not built here")


def brute_force(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(scale q k^T) v in float64, one (batch, head, query) at a time, heads concatenated: [B, N, H*D]."""
    b, h, n, d = q.shape
    out = torch.zeros(b, n, h, d, dtype=torch.float64)
    for i in range(b):
        for j in range(h):
            for r in range(n):
                scores = (k[i, j].double() @ q[i, j, r].double()) * scale
                weights = torch.exp(scores - scores.max())
                out[i, r, j] = (weights / weights.sum()) @ v[i, j].double()
    return out.reshape(b, n, h * d)


def strided_inputs(b: int, h: int, n: int, m: int, d: int, seed: int = 0):
    """q, k, v as the MiT fast path makes them: views of fused projections, not contiguous."""
    g = torch.Generator().manual_seed(seed)
    q = (3 * torch.randn(b, n, h * d + 5, generator=g))[..., : h * d].view(b, n, h, d).transpose(1, 2)
    kv = torch.randn(b, m, 2, h, d, generator=g).permute(2, 0, 3, 1, 4)
    return q, kv[0], kv[1]


@needs_kernel
@pytest.mark.parametrize("b,h,n,m,d", [(1, 1, 100, 405, 32), (2, 3, 37, 5, 16), (1, 2, 61, 33, 48),
                                       (1, 1, 9, 17, 64), (1, 5, 3, 1, 32), (1, 8, 130, 64, 32)])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_matches_brute_force(b, h, n, m, d, threads):
    q, k, v = strided_inputs(b, h, n, m, d)
    assert cpu_attention.kernel_usable(q)
    with torch.inference_mode(), torch_threads(threads):
        got = cpu_attention.attention_tokens(q, k, v, d ** -0.5)
    assert got.shape == (b, n, h * d) and got.is_contiguous()
    want = brute_force(q, k, v, d ** -0.5)
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=2e-5)


@needs_kernel
def test_kernel_survives_large_score_ranges():
    """Scores spanning hundreds (near-one-hot softmax) neither overflow nor produce NaN, and the float32 error
    is of the order of PyTorch's own kernel's (the scores themselves carry float32 rounding of ~1e-5 here)."""
    q, k, v = strided_inputs(1, 2, 40, 50, 32, seed=1)
    q = q * 40
    with torch.inference_mode():
        got = cpu_attention.attention_tokens(q, k, v, 1.0)
        pytorch = F.scaled_dot_product_attention(q, k, v, scale=1.0).transpose(1, 2).reshape(1, 40, 64)
    assert torch.isfinite(got).all()
    want = brute_force(q, k, v, 1.0)
    ours, theirs = (got.double() - want).abs().max(), (pytorch.double() - want).abs().max()
    assert ours <= 3 * theirs + 1e-6, (ours, theirs)


def test_fallback_equals_pytorch_kernel(monkeypatch):
    """Unsupported head widths, plain_ops() and VIDSEG_C_KERNELS=0 take F.scaled_dot_product_attention."""
    q, k, v = strided_inputs(1, 2, 20, 7, 24)
    want = F.scaled_dot_product_attention(q, k, v, scale=0.3).transpose(1, 2).reshape(1, 20, 48)
    assert not cpu_attention.kernel_usable(q)
    assert torch.equal(cpu_attention.attention_tokens(q, k, v, 0.3), want)
    q32, k32, v32 = strided_inputs(1, 2, 20, 7, 32)
    with plain_ops():
        assert not cpu_attention.kernel_usable(q32)
    monkeypatch.setenv("VIDSEG_C_KERNELS", "0")
    assert not cpu_attention.kernel_usable(q32)
    want32 = F.scaled_dot_product_attention(q32, k32, v32, scale=0.3).transpose(1, 2).reshape(1, 20, 64)
    assert torch.equal(cpu_attention.attention_tokens(q32, k32, v32, 0.3), want32)
    assert not cpu_attention.kernel_usable(q32.double())


@needs_kernel
def test_build_is_cached_and_atomic(tmp_path):
    first = cpu_attention.compile_kernel(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cpu_attention.compile_kernel(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind


def test_missing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(OSError):
        cpu_attention.compile_kernel(tmp_path)
    assert not any(tmp_path.iterdir())


@needs_kernel
def test_mit_fast_path_with_kernel_equals_reference():
    torch.manual_seed(0)
    model = MiT(variant="b0").eval()
    image = torch.randn(2, 3, 96, 160)
    with torch.inference_mode():
        fast = model(image)
        with reference_path():
            ref = model(image)
    for a, r in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, r, atol=2e-5, rtol=1e-4)
