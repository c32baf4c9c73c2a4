"""Pyramid pooling heads: the (temporal) PPM of PSPNet/TCB-PSP and the PPM block of UperNet."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vidseg.models.heads.common import conv_bn_relu, resize


class TemporalPPMHead(nn.Module):
    """PSP head whose pooled pyramid is averaged over the frames of a clip (TCB ``ppm_conv``, spec §1.3).

    ``pool`` average-pools one frame's features at each scale; the caller averages the pooled maps of the
    frames (uniform mean = TCB's blending; one frame = plain PSPNet); ``forward`` applies the 1x1 conv+BN+ReLU
    per scale to the averaged maps, upsamples them to the target's size, concatenates them after the target
    features and classifies with Conv3x3+BN+ReLU, Dropout2d, Conv1x1.

    Keys: ``ppm.{i}.{0 conv, 1 bn}``, ``conv_last_.{0 conv, 1 bn, 4 conv}``.

    Args:
        in_channels: channels of the input features (2048 for ResNet layer4).
        channels: channels per pyramid level and of the last conv (512).
        num_classes: output classes.
        pool_scales: output sizes of the adaptive average pools.
        dropout: Dropout2d rate before the classifier.
    """

    def __init__(self, in_channels: int = 2048, channels: int = 512, num_classes: int = 124, *,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm = nn.ModuleList(nn.Sequential(*conv_bn_relu(in_channels, channels, 1)) for _ in self.pool_scales)
        self.conv_last_ = nn.Sequential(*conv_bn_relu(in_channels + len(self.pool_scales) * channels, channels, 3),
                                        nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))

    def pool(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, C, h, w] -> one [B, C, s, s] map per pool scale."""
        return [F.adaptive_avg_pool2d(x, s) for s in self.pool_scales]

    def forward(self, target: torch.Tensor, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        """target [B, C, h, w] and the (frame-averaged) pooled maps -> logits [B, K, h, w]."""
        size = target.shape[-2:]
        levels = [resize(conv(p), size) for conv, p in zip(self.ppm, pooled, strict=True)]
        return self.conv_last_(torch.cat([target, *levels], dim=1))


class PPM(nn.Module):
    """UperNet pyramid pooling module (mmseg ``PPM``): pool, Conv1x1+BN+ReLU, upsample; returns the levels.

    Args:
        in_channels: input channels.
        channels: output channels per level.
        pool_scales: adaptive pool sizes.
    """

    def __init__(self, in_channels: int, channels: int, pool_scales: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.stages = nn.ModuleList(nn.Sequential(*conv_bn_relu(in_channels, channels, 1)) for _ in self.pool_scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, C, h, w] -> list of [B, channels, h, w]."""
        return [resize(stage(F.adaptive_avg_pool2d(x, s)), x.shape[-2:])
                for s, stage in zip(self.pool_scales, self.stages, strict=True)]
