"""The C kernels of the MiT fast path (vidseg.models.ops.cpu_kernels: attention, LayerNorm) against float64
brute force, their fallbacks, their build cache, and the MiT encoder with them against the reference forward."""

import pytest
import torch
import torch.nn.functional as F

from vidseg.inference.runtime import torch_threads
from vidseg.models.backbones.mit import MiT
from vidseg.models.fastpath import plain_ops, reference_path
from vidseg.models.ops import cpu_kernels

needs_kernel = pytest.mark.skipif(cpu_kernels._library() is None,
                                  reason="no AVX-512 CPU or no C compiler: the kernels are not built here")


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
    assert not cpu_kernels.attention_usable(q)  # autograd on: the kernels have no backward
    with torch.inference_mode(), torch_threads(threads):
        assert cpu_kernels.attention_usable(q)
        got = cpu_kernels.attention_tokens(q, k, v, d ** -0.5)
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
        got = cpu_kernels.attention_tokens(q, k, v, 1.0)
        pytorch = F.scaled_dot_product_attention(q, k, v, scale=1.0).transpose(1, 2).reshape(1, 40, 64)
    assert torch.isfinite(got).all()
    want = brute_force(q, k, v, 1.0)
    ours, theirs = (got.double() - want).abs().max(), (pytorch.double() - want).abs().max()
    assert ours <= 3 * theirs + 1e-6, (ours, theirs)


def test_fallback_equals_pytorch_kernel(monkeypatch):
    """Unsupported head widths, plain_ops() and VIDSEG_C_KERNELS=0 take F.scaled_dot_product_attention."""
    q, k, v = strided_inputs(1, 2, 20, 7, 24)
    want = F.scaled_dot_product_attention(q, k, v, scale=0.3).transpose(1, 2).reshape(1, 20, 48)
    with torch.inference_mode():
        assert not cpu_kernels.attention_usable(q)
        assert torch.equal(cpu_kernels.attention_tokens(q, k, v, 0.3), want)
    q32, k32, v32 = strided_inputs(1, 2, 20, 7, 32)
    with plain_ops(), torch.inference_mode():
        assert not cpu_kernels.attention_usable(q32)
    want32 = F.scaled_dot_product_attention(q32, k32, v32, scale=0.3).transpose(1, 2).reshape(1, 20, 64)
    monkeypatch.setenv("VIDSEG_C_KERNELS", "0")
    with torch.inference_mode():
        assert not cpu_kernels.attention_usable(q32)
        assert torch.equal(cpu_kernels.attention_tokens(q32, k32, v32, 0.3), want32)
        monkeypatch.delenv("VIDSEG_C_KERNELS")
        assert not cpu_kernels.attention_usable(q32.double())


@needs_kernel
def test_build_is_cached_and_atomic(tmp_path):
    first = cpu_kernels.compile_kernel(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cpu_kernels.compile_kernel(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind


def test_missing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(OSError):
        cpu_kernels.compile_kernel(tmp_path)
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


def brute_force_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dimension, in float64 from the definition."""
    x = x.double()
    mean = x.sum(-1, keepdim=True) / x.shape[-1]
    var = ((x - mean) ** 2).sum(-1, keepdim=True) / x.shape[-1]
    return (x - mean) / torch.sqrt(var + eps) * weight.double() + bias.double()


@needs_kernel
@pytest.mark.parametrize("shape,channels", [((1, 300, 32), 32), ((2, 7, 64), 64), ((3, 160), 160), ((1, 5, 512), 512),
                                            ((257, 16), 16)])
@pytest.mark.parametrize("threads", [1, 2])
def test_layer_norm_matches_brute_force(shape, channels, threads):
    g = torch.Generator().manual_seed(channels)
    norm = torch.nn.LayerNorm(channels, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(channels, generator=g))
        norm.bias.copy_(torch.randn(channels, generator=g))
    x = 4 * torch.randn(*shape, generator=g) + 3  # a large mean: the two-pass variance must not cancel
    with torch.inference_mode(), torch_threads(threads):
        assert cpu_kernels.kernels_usable(x)
        got = cpu_kernels.layer_norm(x, norm)
    assert got.shape == x.shape
    torch.testing.assert_close(got.double(), brute_force_layer_norm(x, norm.weight, norm.bias, 1e-6),
                               atol=5e-6, rtol=1e-5)


@needs_kernel
def test_layer_norm_of_a_strided_view():
    """Rows taken from a wider tensor (row stride > channels) are read in place."""
    norm = torch.nn.LayerNorm(32)
    wide = torch.randn(40, 48)
    with torch.inference_mode():
        got = cpu_kernels.layer_norm(wide[:, :32], norm)
    torch.testing.assert_close(got.double(), brute_force_layer_norm(wide[:, :32], norm.weight, norm.bias, 1e-5),
                               atol=5e-6, rtol=1e-5)


def test_layer_norm_fallbacks_are_the_module():
    """Channels that are not a multiple of 16, no affine, other shapes, plain_ops(): exactly ``norm(x)``."""
    x = torch.randn(4, 10, 24)
    for norm in (torch.nn.LayerNorm(24), torch.nn.LayerNorm(24, elementwise_affine=False)):
        assert torch.equal(cpu_kernels.layer_norm(x, norm), norm(x))
    x32, norm32 = torch.randn(4, 10, 32), torch.nn.LayerNorm(32)
    with plain_ops(), torch.inference_mode():
        assert torch.equal(cpu_kernels.layer_norm(x32, norm32), norm32(x32))
    norm2d = torch.nn.LayerNorm((10, 32))
    assert torch.equal(cpu_kernels.layer_norm(x32, norm2d), norm2d(x32))
