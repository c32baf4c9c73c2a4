"""DCNv2 (detectron2 ModulatedDeformConv layout) against a direct per-pixel bilinear-sampling reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidseg.models.ops import ModulatedDeformConv, ModulatedDeformConvWithOff, modulated_deform_conv2d


def _bilinear(img: torch.Tensor, h: float, w: float) -> torch.Tensor:
    """detectron2 dmcn_im2col_bilinear for one channel-vector img [C, H, W] at (h, w), written out by hand."""
    height, width = img.shape[-2:]
    if not (-1 < h < height and -1 < w < width):
        return torch.zeros(img.shape[0], dtype=img.dtype)
    h_low, w_low = math.floor(h), math.floor(w)
    lh, lw = h - h_low, w - w_low
    total = torch.zeros(img.shape[0], dtype=img.dtype)
    for hh, wy in ((h_low, 1 - lh), (h_low + 1, lh)):
        for ww, wx in ((w_low, 1 - lw), (w_low + 1, lw)):
            if 0 <= hh < height and 0 <= ww < width:
                total = total + wy * wx * img[:, hh, ww]
    return total


def _reference(x, offset, mask, weight, bias, stride, pad, dil, dg):
    """Direct loops over output pixels, taps and deformable groups."""
    n, c, _, _ = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    cg = c // dg
    out = torch.zeros(n, c_out, ho, wo, dtype=x.dtype)
    for b in range(n):
        for y in range(ho):
            for xx in range(wo):
                acc = torch.zeros(c_out, dtype=x.dtype)
                for g in range(dg):
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = float(offset[b, 2 * (g * kh * kw + k), y, xx])
                            dx = float(offset[b, 2 * (g * kh * kw + k) + 1, y, xx])
                            m = mask[b, g * kh * kw + k, y, xx]
                            val = _bilinear(x[b, g * cg:(g + 1) * cg], y * stride - pad + i * dil + dy,
                                            xx * stride - pad + j * dil + dx)
                            acc = acc + weight[:, g * cg:(g + 1) * cg, i, j] @ val * m
                out[b, :, y, xx] = acc + (bias if bias is not None else 0)
    return out


def _random_case(seed, n=1, c=4, h=5, w=6, c_out=3, k=3, stride=1, pad=1, dil=1, dg=1, scale=2.0,
                 dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    ho = (h + 2 * pad - (dil * (k - 1) + 1)) // stride + 1
    wo = (w + 2 * pad - (dil * (k - 1) + 1)) // stride + 1
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    offset = torch.randn(n, 2 * dg * k * k, ho, wo, generator=gen, dtype=dtype) * scale
    mask = torch.rand(n, dg * k * k, ho, wo, generator=gen, dtype=dtype)
    weight = torch.randn(c_out, c, k, k, generator=gen, dtype=dtype)
    bias = torch.randn(c_out, generator=gen, dtype=dtype)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize(("stride", "pad", "dil", "dg", "scale"), [
    (1, 1, 1, 1, 2.0),   # offsets push many samples across the borders
    (2, 1, 1, 2, 1.5),   # stride and two deformable groups
    (1, 2, 2, 1, 0.7),   # dilation
    (1, 1, 1, 1, 6.0),   # most samples outside the image
])
def test_forward_matches_direct_reference(stride, pad, dil, dg, scale):
    x, offset, mask, weight, bias = _random_case(0, n=2, stride=stride, pad=pad, dil=dil, dg=dg, scale=scale)
    ours = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, pad, dil, dg)
    ref = _reference(x, offset, mask, weight, bias, stride, pad, dil, dg)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_border_rule_minus_one_and_size_are_excluded():
    """A sample at exactly h = -1 or h = H is zero; at -0.5 it is half of row 0 (detectron2 rule)."""
    x = torch.arange(1.0, 13.0, dtype=torch.float64).view(1, 1, 3, 4)
    weight = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    mask = torch.ones(1, 1, 3, 4, dtype=torch.float64)
    for dy, expected_row0 in ((-1.0, [0.0] * 4), (-0.5, [0.5, 1.0, 1.5, 2.0])):
        offset = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
        offset[:, 0] = dy
        out = modulated_deform_conv2d(x, offset, mask, weight)
        torch.testing.assert_close(out[0, 0, 0], torch.tensor(expected_row0, dtype=torch.float64))
    offset = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    offset[:, 1] = 1.0  # dx = +1: last column samples w = W -> zero
    out = modulated_deform_conv2d(x, offset, mask, weight)
    assert torch.all(out[0, 0, :, -1] == 0)
    torch.testing.assert_close(out[0, 0, :, :-1], x[0, 0, :, 1:])


def test_zero_offsets_unit_mask_equal_conv2d():
    x, offset, mask, weight, bias = _random_case(1, n=2, c=5, h=7, w=9, c_out=4, stride=2, pad=1)
    zeros, ones = torch.zeros_like(offset), torch.ones_like(mask)
    ours = modulated_deform_conv2d(x, zeros, ones, weight, bias, 2, 1, 1, 1)
    torch.testing.assert_close(ours, F.conv2d(x, weight, bias, 2, 1), rtol=1e-12, atol=1e-12)
    x32, w32 = x.float(), weight.float()
    ours32 = modulated_deform_conv2d(x32, zeros.float(), ones.float(), w32, None, 2, 1, 1, 1)
    torch.testing.assert_close(ours32, F.conv2d(x32, w32, None, 2, 1), rtol=1e-5, atol=1e-5)


def test_offset_layout_dy_then_dx_per_tap():
    """Shifting only tap 0 (top-left) by dy = +1 equals moving that tap one row down."""
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[0, 0, 0, 0] = 1.0
    offset = torch.zeros(1, 18, 6, 6, dtype=torch.float64)
    offset[:, 0] = 1.0  # channel 0 = dy of tap (0, 0)
    out = modulated_deform_conv2d(x, offset, torch.ones(1, 9, 6, 6, dtype=torch.float64), weight, padding=1)
    tap_middle_left = torch.zeros_like(weight)
    tap_middle_left[0, 0, 1, 0] = 1.0
    torch.testing.assert_close(out, F.conv2d(x, tap_middle_left, padding=1))


def test_gradcheck_float64():
    x, offset, mask, weight, bias = _random_case(2, n=1, c=2, h=4, w=5, c_out=2, scale=1.3)
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias))
    assert torch.autograd.gradcheck(
        lambda a, o, m, wt, b: modulated_deform_conv2d(a, o, m, wt, b, 1, 1, 1, 1), inputs, eps=1e-6, atol=1e-6)


def test_module_layout_and_sigmoid_mask():
    torch.manual_seed(0)
    layer = ModulatedDeformConvWithOff(4, 6, 3, padding=1, bias=False)
    assert sorted(layer.state_dict()) == ["dcnv2.weight", "offset_mask_conv.bias", "offset_mask_conv.weight"]
    assert layer.offset_mask_conv.out_channels == 27
    x = torch.randn(2, 4, 5, 7)
    om = layer.offset_mask_conv(x)
    expected = modulated_deform_conv2d(x, om[:, :18], torch.sigmoid(om[:, 18:]), layer.dcnv2.weight, None, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert isinstance(layer.dcnv2, ModulatedDeformConv)
