"""Modulated deformable convolution (DCNv2) in pure PyTorch, in detectron2's ``ModulatedDeformConv`` layout.

detectron2's op is CUDA-only; this one runs anywhere PyTorch runs and takes the same tensors:

* ``weight`` [C_out, C_in, kh, kw] and optional ``bias`` [C_out] (parameter names ``weight``/``bias``, so a
  detectron2 checkpoint loads 1:1);
* ``offset`` [N, 2 * dg * kh * kw, H_out, W_out]: for deformable group ``g`` and tap ``k = i * kw + j`` channel
  ``2 * (g * kh * kw + k)`` is the vertical offset (dy) and the next channel the horizontal one (dx);
* ``mask`` [N, dg * kh * kw, H_out, W_out], already through a sigmoid (modulation scalars).

Sampling rule (detectron2 ``dmcn_im2col_bilinear``): output pixel ``(y, x)`` and tap ``(i, j)`` read the input at
``h = y * stride - pad + i * dilation + dy`` and ``w = x * stride - pad + j * dilation + dx`` by bilinear
interpolation; the sample is zero unless ``-1 < h < H`` and ``-1 < w < W``, and corners outside the image count as
zero. This is exactly bilinear ``grid_sample`` with zero padding, which we use (``align_corners=False`` with the
matching normalisation, so 1-pixel-wide inputs work too). The sampled columns are modulated by the mask and
reduced by one batched matrix product with the weight.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


def _out_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _sampling_grid(offset: torch.Tensor, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int], dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """Normalised ``grid_sample`` grid [N * dg, K * H_out, W_out, 2] (x, y) from detectron2-layout offsets."""
    n, _, ho, wo = offset.shape
    kh, kw = kernel
    k = kh * kw
    device, dtype = offset.device, offset.dtype
    off = offset.view(n, groups, k, 2, ho, wo)
    tap_y = (torch.arange(kh, device=device, dtype=dtype) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, device=device, dtype=dtype) * dilation[1]).repeat(kh)
    out_y = torch.arange(ho, device=device, dtype=dtype) * stride[0] - padding[0]
    out_x = torch.arange(wo, device=device, dtype=dtype) * stride[1] - padding[1]
    pos_y = off[:, :, :, 0] + (tap_y.view(k, 1, 1) + out_y.view(1, ho, 1))
    pos_x = off[:, :, :, 1] + (tap_x.view(k, 1, 1) + out_x.view(1, 1, wo))
    height, width = in_hw
    grid = torch.stack(((2 * pos_x + 1) / width - 1, (2 * pos_y + 1) / height - 1), dim=-1)
    return grid.view(n * groups, k * ho, wo, 2)


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None = None, stride: int | tuple[int, int] = 1,
                            padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1,
                            deformable_groups: int = 1) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2), detectron2 semantics.

    Args:
        x: input [N, C_in, H, W].
        offset: [N, 2 * dg * kh * kw, H_out, W_out], (dy, dx) interleaved per tap (module docstring).
        mask: [N, dg * kh * kw, H_out, W_out] modulation (after sigmoid).
        weight: [C_out, C_in, kh, kw].
        bias: [C_out] or None.
        stride, padding, dilation: as in ``conv2d``.
        deformable_groups: number of offset groups dg; channel ``c`` uses group ``c // (C_in / dg)``.

    Returns:
        [N, C_out, H_out, W_out].
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    c_out, c_w, kh, kw = weight.shape
    if c_w != c:
        raise ValueError(f"modulated_deform_conv2d: weight expects {c_w} input channels, x has {c}")
    if c % deformable_groups:
        raise ValueError(f"modulated_deform_conv2d: {c} channels not divisible by {deformable_groups} groups")
    ho = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = _out_size(w, kw, stride[1], padding[1], dilation[1])
    k = kh * kw
    expected = (n, 2 * deformable_groups * k, ho, wo)
    if tuple(offset.shape) != expected or tuple(mask.shape) != (n, deformable_groups * k, ho, wo):
        raise ValueError(f"modulated_deform_conv2d: offset {tuple(offset.shape)} / mask {tuple(mask.shape)} "
                         f"do not match the output grid; expected offset {expected}")
    grid = _sampling_grid(offset, (h, w), (kh, kw), stride, padding, dilation, deformable_groups)
    cols = F.grid_sample(x.reshape(n * deformable_groups, c // deformable_groups, h, w), grid,
                         mode="bilinear", padding_mode="zeros", align_corners=False)
    # grid_sample returns a fresh tensor, so the modulation can be applied in place (saves a copy of the columns)
    cols = cols.view(n, deformable_groups, c // deformable_groups, k, ho * wo)
    cols = cols.mul_(mask.view(n, deformable_groups, 1, k, ho * wo))
    out = torch.matmul(weight.reshape(c_out, c * k), cols.reshape(n, c * k, ho * wo))
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    return out.view(n, c_out, ho, wo)


class ModulatedDeformConv(nn.Module):
    """detectron2 ``ModulatedDeformConv``: parameters ``weight``, ``bias``, then optional ``norm`` and activation.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation: as ``nn.Conv2d``.
        deformable_groups: offset groups.
        bias: whether to learn a bias.
        norm: module applied after the convolution (detectron2 puts GroupNorm here), or None.
        activation: callable applied last, or None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *,
                 stride: int = 1, padding: int = 0, dilation: int = 1, deformable_groups: int = 1,
                 bias: bool = True, norm: nn.Module | None = None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [N, C_in, H, W], offset [N, 2*dg*K, Ho, Wo], mask [N, dg*K, Ho, Wo] -> [N, C_out, Ho, Wo]."""
        out = modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                      self.dilation, self.deformable_groups)
        if self.norm is not None:
            out = self.norm(out)
        if self.activation is not None:
            out = self.activation(out)
        return out


class ModulatedDeformConvWithOff(nn.Module):
    """A DCNv2 whose offsets and mask come from a plain conv of the same input (PanopticFCN's wrapper).

    ``offset_mask_conv`` has ``3 * dg * kh * kw`` outputs: the first ``2 * dg * K`` channels, in order, are the
    offsets (the official wrapper's ``cat(o1, o2)`` of the first two thirds), the last third goes through a
    sigmoid as the mask. Keys: ``offset_mask_conv.{weight,bias}``, ``dcnv2.weight``, ``dcnv2.bias`` (if any),
    ``dcnv2.norm.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 padding: int = 1, dilation: int = 1, deformable_groups: int = 1, bias: bool = True,
                 norm: nn.Module | None = None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.num_offsets = 2 * deformable_groups * kernel_size * kernel_size
        self.offset_mask_conv = nn.Conv2d(in_channels, 3 * deformable_groups * kernel_size * kernel_size,
                                          kernel_size, stride=stride, padding=padding)
        self.dcnv2 = ModulatedDeformConv(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                         dilation=dilation, deformable_groups=deformable_groups, bias=bias,
                                         norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C_in, H, W] -> [N, C_out, H_out, W_out]."""
        offset_mask = self.offset_mask_conv(x)
        offset = offset_mask[:, : self.num_offsets]
        mask = torch.sigmoid(offset_mask[:, self.num_offsets:])
        return self.dcnv2(x, offset, mask)
