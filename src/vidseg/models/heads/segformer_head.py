"""The SegFormer all-MLP decoder (NVlabs layout), shared by SegFormer and CFFM.

Per input level ``i`` a Linear ``C_i -> E`` (``linear_c{i}.proj``), upsampling to 1/4 (bilinear,
``align_corners=False``), concatenation in the order **[c4, c3, c2, c1]**, ``linear_fuse`` = 1x1 conv without
bias + BatchNorm + ReLU (the official mmcv ``ConvModule``; keys ``linear_fuse.conv``/``linear_fuse.bn``),
Dropout2d(0.1) and ``linear_pred`` = 1x1 conv ``E -> K``. Attribute names follow the official checkpoints so
their ``decode_head.*`` keys load without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.fastpath import cached_weights, linear_add, map_to_tokens, tokens_to_map, use_fast_path


class LinearEmbed(nn.Module):
    """``proj``: Linear ``C -> E`` applied per pixel; [B, C, H, W] -> [B, E, H, W]."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.proj(x.flatten(2).transpose(1, 2))  # [B, HW, E]
        return y.transpose(1, 2).reshape(b, -1, h, w)


class ConvBNReLU(nn.Module):
    """1x1 conv (no bias) + BatchNorm + ReLU, with the mmcv ``ConvModule`` attribute names ``conv``/``bn``."""

    conv_bn_pairs = (("conv", "bn"),)  # bn(conv(x)): foldable at inference (vidseg.inference.runtime)

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SegFormerHead(nn.Module):
    """All-MLP decoder.

    Args:
        in_channels: channels of the four backbone levels (strides 4, 8, 16, 32).
        num_classes: K.
        embed_dim: E (256 in the VSPW configs of CFFM/MRCFA for every variant).
        dropout: Dropout2d probability before ``linear_pred``.
        with_conv_seg: also create the official ``conv_seg`` (1x1 conv ``channels -> K`` of mmseg's
            ``BaseDecodeHead``), which the official forward never uses. It exists only so official checkpoints
            load without unexpected keys and parameter counts match; its parameters are frozen
            (``requires_grad=False``) so optimisers and DDP ignore them.
        conv_seg_channels: input channels of ``conv_seg`` (the configs' ``channels=128``).
    """

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, embed_dim: int = 256,
                 dropout: float = 0.1, with_conv_seg: bool = False, conv_seg_channels: int = 128) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"SegFormerHead needs 4 input levels, got in_channels={tuple(in_channels)}")
        self.in_channels = tuple(in_channels)
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        c1, c2, c3, c4 = self.in_channels
        self.linear_c4 = LinearEmbed(c4, embed_dim)
        self.linear_c3 = LinearEmbed(c3, embed_dim)
        self.linear_c2 = LinearEmbed(c2, embed_dim)
        self.linear_c1 = LinearEmbed(c1, embed_dim)
        self.linear_fuse = ConvBNReLU(4 * embed_dim, embed_dim)
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, kernel_size=1)
        if with_conv_seg:
            self.conv_seg = nn.Conv2d(conv_seg_channels, num_classes, kernel_size=1)
            self.conv_seg.requires_grad_(False)

    def check_inputs(self, feats: Sequence[torch.Tensor]) -> None:
        """Raise ``ValueError`` unless ``feats`` are four [B, C_i, h_i, w_i] maps with the expected channels."""
        got = tuple(int(f.shape[1]) if f.dim() == 4 else -1 for f in feats)
        if len(feats) != 4 or got != self.in_channels:
            raise ValueError(f"SegFormerHead expects 4 maps [B, C, h, w] with C = {self.in_channels}, "
                             f"got shapes {[tuple(f.shape) for f in feats]}")

    def fuse(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fused decoder feature ``_c``.

        Args:
            feats: [c1, c2, c3, c4], [B, C_i, h_i, w_i] at strides 4, 8, 16, 32.

        Returns:
            [B, E, h1, w1] at the resolution of c1 (1/4).
        """
        self.check_inputs(feats)
        if use_fast_path(self):
            return self._fuse_fast(feats)
        c1, c2, c3, c4 = feats
        size = c1.shape[2:]

        def up(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        _c4 = up(self.linear_c4(c4))
        _c3 = up(self.linear_c3(c3))
        _c2 = up(self.linear_c2(c2))
        _c1 = self.linear_c1(c1)
        return self.linear_fuse(torch.cat([_c4, _c3, _c2, _c1], dim=1))

    def _folded(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``linear_fuse`` and its eval BatchNorm folded into the four ``linear_c*`` projections.

        The 1x1 fuse convolution splits into one [E, E] block per level; a per-pixel linear map commutes with
        bilinear resizing (whose weights sum to 1, so constants pass through), hence
        ``bn(fuse(cat[up(L4 c4), .., L1 c1])) = sum_i up(M_i c_i) + bias`` with ``M_i = s * F_i W_i``.

        Returns:
            ``([M_c1, M_c2, M_c3, M_c4] each [E, C_i], bias [E])``.
        """
        bn, conv = self.linear_fuse.bn, self.linear_fuse.conv
        linears = [self.linear_c1.proj, self.linear_c2.proj, self.linear_c3.proj, self.linear_c4.proj]
        norm = (bn.weight, bn.bias, bn.running_mean, bn.running_var) if isinstance(bn, nn.BatchNorm2d) else ()
        params = (conv.weight, *([] if conv.bias is None else [conv.bias]), *norm,
                  *[t for lin in linears for t in (lin.weight, lin.bias)])

        def make() -> tuple[list[torch.Tensor], torch.Tensor]:
            scale = torch.ones_like(conv.weight[:, 0, 0, 0])  # bn already folded (prepare_for_inference)
            shift = torch.zeros_like(scale) if conv.bias is None else conv.bias
            if norm:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                shift = bn.bias + (shift - bn.running_mean) * scale
            blocks = (conv.weight.flatten(1) * scale[:, None]).chunk(4, dim=1)[::-1]  # cat order is c4..c1
            mats = [block @ lin.weight for block, lin in zip(blocks, linears)]
            bias = shift + sum(block @ lin.bias for block, lin in zip(blocks, linears))
            return mats, bias

        return cached_weights(self, "folded", params, make)

    def _fuse_fast(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Inference :meth:`fuse` (eval, no autograd) with the folded weights, in channels-last memory.

        Returns:
            [B, E, h1, w1], a channels-last view (equal to :meth:`fuse` up to float rounding).
        """
        mats, bias = self._folded()
        size = feats[0].shape[2:]

        # the coarse levels upsampled and summed, then c1's projection with the bias and that sum fused in
        coarse = None
        for x, mat in zip(feats[1:], mats[1:]):
            up = F.interpolate(tokens_to_map(linear_add(map_to_tokens(x), mat, None), *x.shape[2:]), size=size,
                               mode="bilinear", align_corners=False)
            coarse = up if coarse is None else coarse.add_(up)
        residual = None if coarse is None else map_to_tokens(coarse).contiguous()
        return tokens_to_map(linear_add(map_to_tokens(feats[0]), mats[0], bias, residual), *size).relu_()

    def predict(self, fused: torch.Tensor) -> torch.Tensor:
        """``linear_pred(dropout(fused))``: [B, E, h, w] -> logits [B, K, h, w]."""
        if use_fast_path(self) and fused.is_contiguous(memory_format=torch.channels_last):
            tokens = map_to_tokens(fused)
            weight = self.linear_pred.weight.flatten(1)
            logits = torch.baddbmm(self.linear_pred.bias[:, None], weight.expand(fused.shape[0], -1, -1),
                                   tokens.transpose(1, 2))
            return logits.view(fused.shape[0], -1, *fused.shape[2:])
        return self.linear_pred(self.dropout(fused))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """[c1, c2, c3, c4] -> logits [B, K, h1, w1] at 1/4 of the image."""
        return self.predict(self.fuse(feats))
