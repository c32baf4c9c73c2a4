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


def mix_ffn_layers(c: int, hidden: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    fc1, fc2 = torch.nn.Linear(c, hidden), torch.nn.Linear(hidden, c)
    conv = torch.nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
    with torch.no_grad():
        for p in (*fc1.parameters(), *fc2.parameters(), *conv.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() < 2 else 0.3))
    return fc1, conv, fc2


def brute_force_mix_ffn(x, residual, height, width, fc1, conv, fc2) -> torch.Tensor:
    """residual + fc2(GELU(dwconv(fc1(x)))) in float64: the 3x3 depthwise sum written out tap by tap over a
    zero-padded map, GELU from its definition 0.5 x (1 + erf(x / sqrt 2))."""
    b, _, c = x.shape
    hidden = fc1.out_features
    h = (x.double() @ fc1.weight.double().t() + fc1.bias.double()).view(b, height, width, hidden)
    padded = torch.zeros(b, height + 2, width + 2, hidden, dtype=torch.float64)
    padded[:, 1:-1, 1:-1] = h
    taps = conv.weight.double().view(hidden, 3, 3)
    acc = conv.bias.double().expand(b, height, width, hidden).clone()
    for dy in range(3):
        for dx in range(3):
            acc += padded[:, dy:dy + height, dx:dx + width] * taps[:, dy, dx]
    gelu = 0.5 * acc * (1 + torch.erf(acc / 2 ** 0.5))
    out = gelu.reshape(b, -1, hidden) @ fc2.weight.double().t() + fc2.bias.double()
    return out + residual.double()


@needs_kernel
@pytest.mark.parametrize("b,height,width,c", [(1, 9, 21, 32), (2, 5, 11, 64), (1, 1, 3, 32), (1, 2, 8, 160),
                                              (1, 7, 1, 32)])
@pytest.mark.parametrize("threads", [1, 2])
def test_mix_ffn_matches_brute_force(b, height, width, c, threads):
    hidden = 4 * c
    fc1, conv, fc2 = mix_ffn_layers(c, hidden)
    g = torch.Generator().manual_seed(1)
    x, residual = torch.randn(b, height * width, c, generator=g), torch.randn(b, height * width, c, generator=g)
    with torch.inference_mode(), torch_threads(threads):
        got = cpu_kernels.mix_ffn(x, residual, height, width, fc1, conv, fc2)
        plain = fc2(F.gelu(conv(fc1(x).view(b, height, width, hidden).permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
                    .reshape(b, -1, hidden)) + residual
    assert got is not None and got.shape == x.shape
    want = brute_force_mix_ffn(x, residual, height, width, fc1, conv, fc2)
    ours, pytorch = (got.double() - want).abs().max(), (plain.double() - want).abs().max()
    assert ours <= 4 * pytorch + 1e-5, (ours, pytorch)  # float32 rounding of the same order as PyTorch's ops


def test_mix_ffn_declines_what_it_does_not_fuse():
    """None (the caller runs the layers) for a hidden width above MIX_FFN_MAX_HIDDEN, channels that are not a
    multiple of 32, a strided or bias-free depthwise conv, and with autograd on."""
    x = torch.randn(1, 12, 256)
    with torch.inference_mode():
        assert cpu_kernels.mix_ffn(x, x, 3, 4, *mix_ffn_layers(256, 1024)) is None
        assert cpu_kernels.mix_ffn(x[..., :48], x[..., :48], 3, 4, *mix_ffn_layers(48, 192)) is None
        fc1, conv, fc2 = mix_ffn_layers(32, 128)
        strided = torch.nn.Conv2d(128, 128, 3, stride=2, padding=1, groups=128)
        no_bias = torch.nn.Conv2d(128, 128, 3, padding=1, groups=128, bias=False)
        for bad in (strided, no_bias):
            assert cpu_kernels.mix_ffn(x[..., :32], x[..., :32], 3, 4, fc1, bad, fc2) is None
    assert cpu_kernels.mix_ffn(x[..., :32], x[..., :32], 3, 4, fc1, conv, fc2) is None


def brute_force_window_attention(q, table, rows, bias, scale) -> torch.Tensor:
    """Per window and head, in float64: gather the rows, softmax(scale q k^T + bias) v; heads side by side."""
    w, heads, nq, d = q.shape
    c = heads * d
    out = torch.zeros(w, nq, heads, d, dtype=torch.float64)
    for i in range(w):
        gathered = table[rows[i]].double()  # [M, 2C]
        for h in range(heads):
            k, v = gathered[:, h * d:(h + 1) * d], gathered[:, c + h * d:c + (h + 1) * d]
            logits = scale * q[i, h].double() @ k.t() + bias[i % bias.shape[0], h].double()
            out[i, :, h] = torch.softmax(logits, -1) @ v
    return out.reshape(w, nq, c)


@needs_kernel
@pytest.mark.parametrize("windows,bias_windows,heads,nq,m,d", [(6, 3, 2, 49, 40, 32), (2, 2, 8, 9, 289, 32),
                                                               (3, 1, 1, 5, 17, 64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_window_attention_matches_brute_force(windows, bias_windows, heads, nq, m, d, threads):
    g = torch.Generator().manual_seed(windows + m)
    c = heads * d
    q = torch.randn(windows, nq, 3 * c, generator=g)[..., :c].view(windows, nq, heads, d).transpose(1, 2)
    table = torch.randn(50, 2 * c, generator=g)
    rows = torch.randint(0, 50, (windows, m), generator=g)
    bias = torch.randn(bias_windows, heads, nq, m, generator=g)
    bias[..., : m // 3] -= 100  # the -100 mask of CFFM's padded positions
    with torch.inference_mode(), torch_threads(threads):
        got = cpu_kernels.window_attention(q, table, rows, bias, d ** -0.5)
    assert got is not None and got.shape == (windows, nq, c)
    torch.testing.assert_close(got.double(), brute_force_window_attention(q, table, rows, bias, d ** -0.5),
                               atol=2e-6, rtol=2e-5)


def test_window_attention_declines_what_it_does_not_fit():
    q = torch.randn(4, 2, 9, 32)
    table, rows, bias = torch.randn(20, 128), torch.randint(0, 20, (4, 7)), torch.randn(2, 2, 9, 7)
    with torch.inference_mode():
        assert cpu_kernels.window_attention(q, table, rows, torch.randn(3, 2, 9, 7), 0.2) is None  # 4 % 3 != 0
        assert cpu_kernels.window_attention(q, table[:, :100], rows, bias, 0.2) is None
        assert cpu_kernels.window_attention(q, table, rows.int(), bias, 0.2) is None
    assert cpu_kernels.window_attention(q, table, rows, bias, 0.2) is None  # autograd on


@needs_kernel
@pytest.mark.parametrize("batch", [1, 2])
def test_cffm_attention_kernel_equals_gather_and_sdpa(batch, monkeypatch):
    """CFFMAttention's fast path with the window kernel against its gathered-keys path (VIDSEG_C_KERNELS=0)."""
    from vidseg.models.video.cffm_attention import CFFMAttention

    torch.manual_seed(0)
    attn = CFFMAttention().eval()
    with torch.no_grad():
        for name, table in attn.named_parameters():
            if "relative_position_bias_table" in name:
                table.normal_(0, 0.5)
    n_h, n_w = 2, 3
    target = torch.randn(batch, 7 * n_h, 7 * n_w, 256)
    pooled_target = torch.randn(batch, n_h, n_w, 256)
    refs = [torch.randn(batch, s * n_h, s * n_w, 256) for s in attn.clip_strides]
    with torch.inference_mode():
        fast = attn(target, pooled_target, refs)
        monkeypatch.setenv("VIDSEG_C_KERNELS", "0")
        gathered = attn(target, pooled_target, refs)
    assert fast.shape == gathered.shape == (batch * n_h * n_w, 49, 256)
    torch.testing.assert_close(fast, gathered, atol=2e-5, rtol=1e-4)
