"""UperNet head (PPM on the last level + FPN, mmseg ``UPerHead`` structure), channels 512."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vidseg.models.heads.common import conv_bn_relu, resize
from vidseg.models.heads.ppm import PPM


class UPerHead(nn.Module):
    """Unified perceptual parsing head.

    Lateral Conv1x1+BN+ReLU on levels 0..n-2, PPM (1,2,3,6) + Conv3x3 bottleneck on the last level, top-down
    addition, Conv3x3 on each merged level, all levels upsampled to level 0 and fused by a Conv3x3, then
    Dropout2d(0.1) and Conv1x1 to the classes.

    Args:
        in_channels: channels of the input levels (e.g. Swin ``(96, 192, 384, 768)``).
        channels: width of the head (512).
        num_classes: output classes.
        pool_scales: PPM scales.
        dropout: Dropout2d before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 512, num_classes: int = 124, *,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.psp_modules = PPM(self.in_channels[-1], channels, pool_scales)
        self.bottleneck = nn.Sequential(*conv_bn_relu(self.in_channels[-1] + len(pool_scales) * channels, channels, 3))
        self.lateral_convs = nn.ModuleList(nn.Sequential(*conv_bn_relu(c, channels, 1)) for c in self.in_channels[:-1])
        self.fpn_convs = nn.ModuleList(nn.Sequential(*conv_bn_relu(channels, channels, 3)) for _ in self.in_channels[:-1])
        self.fpn_bottleneck = nn.Sequential(*conv_bn_relu(len(self.in_channels) * channels, channels, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def fuse(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Levels (finest first) -> fused features [B, channels, h0, w0] at the finest level's size."""
        top = feats[-1]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats[:-1], strict=True)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals[:-1], strict=True)] + [laterals[-1]]
        size = outs[0].shape[-2:]
        return self.fpn_bottleneck(torch.cat([resize(o, size) for o in outs], dim=1))

    def classify(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused features -> logits [B, K, h0, w0]."""
        return self.conv_seg(self.dropout(fused))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Levels (finest first) -> logits [B, K, h0, w0]."""
        return self.classify(self.fuse(feats))
