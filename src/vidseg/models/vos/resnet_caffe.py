"""Caffe-style ResNet (stride on the first 1x1 conv of a bottleneck) used by both STCNN branches (spec §5.2, §5.4).

The official STCNN code builds its two ResNet-101 encoders from one bottleneck whose *first* 1x1 convolution
carries the stride (the "Caffe" placement; torchvision puts it on the 3x3). The 3x3 conv uses
``padding = dilation``. State-dict keys are torchvision's (``conv1``, ``bn1``, ``layer{1-4}.{i}.conv{1-3}``,
``bn{1-3}``, ``downsample.{0,1}``), so official checkpoints load unchanged.

Two configurations are used:

* temporal branch (``FramePredEncoder``): ``in_channels = 3 * delta``, floor-mode max-pool, strides 2, 2, 2
  -> outputs at 1/4, 1/8, 1/16, 1/32;
* spatial branch (``SegEncoder``): ceil-mode max-pool, layer3 stride 1 dilation 2, layer4 stride 1 with the
  multi-grid dilations (2, 4, 2) -> outputs at 1/4, 1/8, 1/8, 1/8 (output stride 8).

``width`` (64 in ResNet-101) and ``layers`` ((3, 4, 23, 3)) are arguments so tests can build tiny variants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

NormLayer = Callable[[int], nn.Module]


class CaffeBottleneck(nn.Module):
    """Bottleneck 1x1 (stride) -> 3x3 (dilation) -> 1x1 (x4 channels), residual, ReLU.

    Args:
        in_channels: input channels.
        planes: inner width; the output has ``4 * planes`` channels.
        stride: stride of the first 1x1 conv.
        dilation: dilation (= padding) of the 3x3 conv.
        downsample: projection of the residual, or None for the identity.
        norm_layer: BatchNorm2d-like factory taking the channel count.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm_layer(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> [B, 4 * planes, ceil(H / stride), ceil(W / stride)]."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class CaffeResNet(nn.Module):
    """ResNet trunk (no classifier) returning the four stage outputs.

    Args:
        in_channels: input channels (3 for a frame, ``3 * delta`` for the temporal stack).
        layers: blocks per stage, (3, 4, 23, 3) for ResNet-101.
        width: channels of the stem and of stage 1's inner width (64 in ResNet-101).
        strides: stride of stages 2, 3, 4.
        dilations: dilation of every block of each stage 1-4, one tuple per stage (multi-grid).
        ceil_mode: ceil mode of the stem max-pool (True in the spatial branch).
        norm_layer: BatchNorm2d-like factory.

    Attributes:
        out_channels: ``(4w, 8w, 16w, 32w)``.
        out_strides: strides of the four outputs relative to the input.
    """

    def __init__(self, *, in_channels: int = 3, layers: Sequence[int] = (3, 4, 23, 3), width: int = 64,
                 strides: Sequence[int] = (2, 2, 2), dilations: Sequence[Sequence[int]] | None = None,
                 ceil_mode: bool = False, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        if dilations is None:
            dilations = [(1,) * n for n in layers]
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=ceil_mode)
        self._in = width
        all_strides = (1, *strides)
        for i in range(4):
            stage = self._make_stage(width * 2**i, layers[i], all_strides[i], dilations[i], norm_layer)
            self.add_module(f"layer{i + 1}", stage)
        self.out_channels = tuple(width * 4 * 2**i for i in range(4))
        strides_out, s = [], 4
        for st in all_strides:
            s *= st
            strides_out.append(s)
        self.out_strides = tuple(strides_out)

    def _make_stage(self, planes: int, blocks: int, stride: int, dilations: Sequence[int],
                    norm_layer: NormLayer) -> nn.Sequential:
        if len(dilations) != blocks:
            raise ValueError(f"CaffeResNet: {blocks} blocks but {len(dilations)} dilations")
        downsample = None
        if stride != 1 or self._in != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self._in, planes * 4, 1, stride=stride, bias=False),
                                       norm_layer(planes * 4))
        blocks_list = [CaffeBottleneck(self._in, planes, stride=stride, dilation=dilations[0],
                                       downsample=downsample, norm_layer=norm_layer)]
        self._in = planes * 4
        blocks_list += [CaffeBottleneck(self._in, planes, dilation=d, norm_layer=norm_layer) for d in dilations[1:]]
        return nn.Sequential(*blocks_list)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, C_in, H, W] -> four maps [B, out_channels[i], H / out_strides[i], W / out_strides[i]]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs
