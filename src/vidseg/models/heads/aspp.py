"""DeepLabv3+ head: depthwise-separable ASPP (rates 12, 24, 36 at output stride 8) and a low-level decoder.

Structure of the DeepLabv3+ paper as mmseg's ``DepthwiseSeparableASPPHead`` builds it for ResNet at OS8:
image pooling branch + 1x1 branch + three separable 3x3 branches at rates 12/24/36 (each ``channels`` wide,
BN+ReLU), a Conv3x3 bottleneck, then the decoder: the layer1 features reduced to 48 channels by a Conv1x1,
concatenated with the upsampled ASPP output, two separable 3x3 convolutions, Dropout2d(0.1), Conv1x1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vidseg.models.heads.common import conv_bn_relu, resize


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (dilated) + BN + ReLU, then pointwise 1x1 + BN + ReLU."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
                         nn.BatchNorm2d(cin), nn.ReLU(inplace=True), *conv_bn_relu(cin, cout, 1))


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the last level + decoder with the first level.

    Args:
        in_channels: channels of the last level (2048).
        low_channels: channels of the low-level features (256, ResNet layer1).
        channels: ASPP / decoder width (512, mmseg).
        num_classes: output classes.
        rates: atrous rates of the three 3x3 branches (12, 24, 36 at output stride 8).
        low_reduced: channels of the reduced low-level features (48).
        dropout: Dropout2d before the classifier.
    """

    def __init__(self, in_channels: int = 2048, low_channels: int = 256, channels: int = 512, num_classes: int = 124,
                 *, rates: Sequence[int] = (12, 24, 36), low_reduced: int = 48, dropout: float = 0.1) -> None:
        super().__init__()
        self.image_pool = nn.Sequential(*conv_bn_relu(in_channels, channels, 1))
        self.aspp = nn.ModuleList([nn.Sequential(*conv_bn_relu(in_channels, channels, 1)),
                                   *(SeparableConv(in_channels, channels, r) for r in rates)])
        self.bottleneck = nn.Sequential(*conv_bn_relu((len(rates) + 2) * channels, channels, 3))
        self.c1_bottleneck = nn.Sequential(*conv_bn_relu(low_channels, low_reduced, 1))
        self.sep_bottleneck = nn.Sequential(SeparableConv(channels + low_reduced, channels),
                                            SeparableConv(channels, channels))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Backbone levels (layer1 [B, 256, h1, w1] first, layer4 [B, 2048, h, w] last) -> logits [B, K, h1, w1]."""
        low, x = feats[0], feats[-1]
        pooled = resize(self.image_pool(F.adaptive_avg_pool2d(x, 1)), x.shape[-2:])
        out = self.bottleneck(torch.cat([pooled, *(branch(x) for branch in self.aspp)], dim=1))
        out = torch.cat([self.c1_bottleneck(low), resize(out, low.shape[-2:])], dim=1)
        return self.conv_seg(self.dropout(self.sep_bottleneck(out)))
