"""STCNN's spatial segmentation branch (spec §5.4): dilated Caffe-style ResNet + UPerNet-like decoder.

* :func:`build_seg_encoder`: ceil-mode max-pool, layer3 stride 1 dilation 2, layer4 stride 1 with the
  multi-grid dilations ``2 * (1, 2, 1)``; output stride 8; every BN keeps its statistics frozen
  (:class:`~vidseg.models.vos.norm.FrozenStatsBatchNorm2d`; the affine parameters still learn).
* :class:`SegDecoder` (spatial-branch pretraining) and :class:`JointSegDecoder` (the joint model): a PPM on
  the last map (adaptive pool 1/2/3/6, **bilinear upsample first, then** 1x1 conv + BN + ReLU), a 3x3 conv to
  ``fpn_dim``; top-down over layer3, layer2, layer1: lateral ``fpn_in`` 1x1 conv, the coarser map through a
  ``ConvTranspose2d(k4, s2)`` centre-cropped to the lateral size (layer3/layer2 are at the same 1/8 as the PPM
  output, so this x2 deconv + crop zooms into the centre: kept as in the official code), sum, then
  ``fpn_out`` (3x3 conv) or, in the joint model, concatenation with the *detached* temporal feature of the
  level and ``joint_fpn_out``; an attention :class:`Refine` module gated by the sigmoid of the coarser level's
  score map; ``score_out`` (deep supervision) per level; ``conv_last`` on the concatenation of the four levels.

Outputs (logits, 1 channel, at the encoder's 1/8 or 1/4 resolution; the full model upsamples them):
``[ppm score (1/8), layer3 score (1/8), layer2 score (1/8), layer1 score (1/4), fused (1/4)]``.
Module names follow the official code so state-dict keys are the official ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.vos.frame_pred import crop_like
from vidseg.models.vos.norm import FrozenStatsBatchNorm2d
from vidseg.models.vos.resnet_caffe import CaffeResNet

BN = FrozenStatsBatchNorm2d


def build_seg_encoder(*, layers: Sequence[int] = (3, 4, 23, 3), width: int = 64,
                      multi_grid: Sequence[int] = (1, 2, 1)) -> CaffeResNet:
    """Spatial encoder: frame [B, 3, H, W] -> maps at 1/4, 1/8, 1/8, 1/8 (4w, 8w, 16w, 32w channels)."""
    grid = tuple(2 * multi_grid[k % len(multi_grid)] for k in range(layers[3]))  # cycled for other depths
    dilations = [(1,) * layers[0], (1,) * layers[1], (2,) * layers[2], grid]
    encoder = CaffeResNet(in_channels=3, layers=layers, width=width, strides=(2, 1, 1), dilations=dilations,
                          ceil_mode=True, norm_layer=BN)
    for m in encoder.modules():  # official init of the spatial encoder (before ImageNet weights are loaded)
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.01)
    return encoder


def conv_bn_relu(in_c: int, out_c: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + frozen-stat BN + ReLU (official ``ConvBatchNormReLU``)."""
    return nn.Sequential(nn.Conv2d(in_c, out_c, kernel_size, padding=kernel_size // 2, bias=False), BN(out_c),
                         nn.ReLU(inplace=True))


class RegionBottleneck(nn.Module):
    """``x + mask * conv2(relu(bn2(conv1(relu(bn1(x))))))``: a pre-activation residual gated by ``mask``."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.bn1 = BN(planes)
        self.bn2 = BN(planes)
        self.conv1 = nn.Conv2d(planes, planes, 3, padding=1)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], mask [B, 1, H, W] in [0, 1] -> [B, C, H, W]."""
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        return x + y * mask


class Refine(nn.Module):
    """The attention module: ``steps`` RegionBottlenecks sharing one mask (official ``Refine``, 1 step)."""

    def __init__(self, planes: int, steps: int = 1) -> None:
        super().__init__()
        self.rgConv_list = nn.ModuleList(RegionBottleneck(planes) for _ in range(steps))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], mask [B, 1, H, W] -> [B, C, H, W]."""
        for block in self.rgConv_list:
            x = block(x, mask)
        return x


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class _UperAttentionDecoder(nn.Module):
    """What SegDecoder and JointSegDecoder share; subclasses add the per-level output convs."""

    def __init__(self, *, in_channels: Sequence[int], fpn_dim: int, ppm_dim: int,
                 pool_scales: Sequence[int], num_classes: int) -> None:
        super().__init__()
        *lateral, top = in_channels
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in pool_scales)
        self.ppm_conv = nn.ModuleList(conv_bn_relu(top, ppm_dim, 1) for _ in pool_scales)
        self.ppm_last_conv = conv_bn_relu(top + len(pool_scales) * ppm_dim, fpn_dim)
        self.fpn_in = nn.ModuleList(conv_bn_relu(c, fpn_dim, 1) for c in lateral)
        self.score_out = nn.ModuleList(
            nn.Sequential(conv_bn_relu(fpn_dim, fpn_dim), nn.Conv2d(fpn_dim, num_classes, 1))
            for _ in in_channels)
        self.upscale = nn.ModuleList(nn.ConvTranspose2d(fpn_dim, fpn_dim, 4, stride=2, bias=False) for _ in lateral)
        self.att_out = nn.ModuleList(Refine(fpn_dim) for _ in lateral)
        self.conv_last = nn.Sequential(conv_bn_relu(len(in_channels) * fpn_dim, fpn_dim),
                                       nn.Conv2d(fpn_dim, num_classes, 1))

    def _ppm(self, top: torch.Tensor) -> torch.Tensor:
        size = top.shape[2:]
        pooled = [conv(_upsample(pool(top), size)) for pool, conv in zip(self.ppm_pooling, self.ppm_conv)]
        return self.ppm_last_conv(torch.cat([top, *pooled], 1))

    def _level_out(self, i: int, f: torch.Tensor, extra: Sequence[torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, feats: Sequence[torch.Tensor], extra: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
        f = self._ppm(feats[-1])
        score = self.score_out[-1](f)
        results, levels = [score], [f]
        for i in reversed(range(len(feats) - 1)):
            lateral = self.fpn_in[i](feats[i])
            f = lateral + crop_like(self.upscale[i](f), lateral)
            out = self._level_out(i, f, extra)
            mask = torch.sigmoid(_upsample(score, lateral.shape[2:]))
            out = self.att_out[i](out, mask)
            score = self.score_out[i](out)
            results.append(score)
            levels.append(out)
        levels.reverse()  # finest first
        size = levels[0].shape[2:]
        fused = torch.cat([levels[0], *(_upsample(x, size) for x in levels[1:])], 1)
        results.append(self.conv_last(fused))
        return results


class SegDecoder(_UperAttentionDecoder):
    """Decoder of the spatial-branch pretraining model (``fpn_out`` per level; 27,279,109 params at full size).

    Args:
        in_channels: encoder widths, (256, 512, 1024, 2048) for ResNet-101.
        fpn_dim: decoder width (256).
        ppm_dim: width of each PPM branch (512).
        pool_scales: PPM output sizes.
        num_classes: output channels (1: object vs background).
    """

    def __init__(self, *, in_channels: Sequence[int] = (256, 512, 1024, 2048), fpn_dim: int = 256,
                 ppm_dim: int = 512, pool_scales: Sequence[int] = (1, 2, 3, 6), num_classes: int = 1) -> None:
        super().__init__(in_channels=in_channels, fpn_dim=fpn_dim, ppm_dim=ppm_dim, pool_scales=pool_scales,
                         num_classes=num_classes)
        self.fpn_out = nn.ModuleList(nn.Sequential(conv_bn_relu(fpn_dim, fpn_dim)) for _ in in_channels[:-1])

    def _level_out(self, i: int, f: torch.Tensor, extra: Sequence[torch.Tensor] | None) -> torch.Tensor:
        return self.fpn_out[i](f)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """feats: the encoder's four maps -> five logit maps (see the module docstring), not upsampled."""
        return self._decode(feats, None)


class JointSegDecoder(_UperAttentionDecoder):
    """Decoder of the joint model: each level also reads the temporal branch's (detached) decoder feature.

    Args:
        in_channels: encoder widths, (256, 512, 1024, 2048) for ResNet-101.
        pred_channels: widths of the temporal features, coarse to fine (512 @1/16, 256 @1/8, 64 @1/4).
        fpn_dim, ppm_dim, pool_scales, num_classes: as :class:`SegDecoder`.
    """

    def __init__(self, *, in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 pred_channels: Sequence[int] = (512, 256, 64), fpn_dim: int = 256, ppm_dim: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), num_classes: int = 1) -> None:
        super().__init__(in_channels=in_channels, fpn_dim=fpn_dim, ppm_dim=ppm_dim, pool_scales=pool_scales,
                         num_classes=num_classes)
        # level i (0 = finest) reads the temporal feature pred_channels[2 - i]
        self.joint_fpn_out = nn.ModuleList(nn.Sequential(conv_bn_relu(fpn_dim + pred_channels[2 - i], fpn_dim))
                                           for i in range(3))

    def _level_out(self, i: int, f: torch.Tensor, extra: Sequence[torch.Tensor] | None) -> torch.Tensor:
        temporal = crop_like(extra[2 - i], f)
        return self.joint_fpn_out[i](torch.cat([f, temporal], 1))

    def forward(self, feats: Sequence[torch.Tensor], pred_feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Five logit maps from the spatial features and the temporal decoder features.

        Args:
            feats: the spatial encoder's four maps.
            pred_feats: the temporal decoder features ``[f16, f8, f4]``; the coarsest is first resized
                (bilinear) to the PPM output's size, then each is cropped/padded to its level (official).

        Returns:
            five logit maps [B, 1, h_i, w_i] (see the module docstring), not upsampled.
        """
        if len(feats) != 4 or len(pred_feats) != 3:
            raise ValueError("JointSegDecoder: needs 4 spatial and 3 temporal feature maps")
        size = feats[-1].shape[2:]
        pred_feats = [_upsample(pred_feats[0], size), *pred_feats[1:]]
        return self._decode(feats, pred_feats)


class SegBranch(nn.Module):
    """The spatial branch alone (pretraining stage 2): keys ``encoder.*``, ``decoder.*`` as the official.

    Args:
        encoder: from :func:`build_seg_encoder`.
        decoder: a :class:`SegDecoder`.
    """

    def __init__(self, *, encoder: CaffeResNet, decoder: SegDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, frame: torch.Tensor) -> list[torch.Tensor]:
        """frame [B, 3, H, W] (ImageNet-normalised) -> five logit maps [B, 1, H, W] (fused last)."""
        outs = self.decoder(self.encoder(frame))
        return [_upsample(o, frame.shape[2:]) for o in outs]


def build_seg_branch(*, layers: Sequence[int] = (3, 4, 23, 3), width: int = 64, fpn_dim: int = 256,
                     ppm_dim: int = 512) -> SegBranch:
    """The spatial-branch pretraining model; defaults give the official 69,779,269 parameters."""
    encoder = build_seg_encoder(layers=layers, width=width)
    return SegBranch(encoder=encoder, decoder=SegDecoder(in_channels=encoder.out_channels, fpn_dim=fpn_dim,
                                                         ppm_dim=ppm_dim))
