"""The CSAIL "deep-stem" ResNet-50/101 used by TCB, dilated to output stride 8 (spec models.md §1.2).

Differences from the torchvision ResNet: the stem is three 3x3 convolutions (3->64 stride 2, 64->64, 64->128),
each followed by BN+ReLU, then a 3x3/2 max-pool, and layer1 starts from 128 channels. Bottlenecks put the
stride on the 3x3 convolution. Dilation follows CSAIL's ``ResnetDilated._nostride_dilate`` exactly: in a
layer dilated by ``d``, the convolution that had stride 2 gets stride 1 and, if it is a 3x3, dilation ``d/2``;
every other 3x3 gets dilation ``d``. Output stride 8 dilates layer3 by 2 and layer4 by 4; output stride 16
dilates layer4 by 2; output stride 32 is the plain network.

Inputs are RGB images normalised with the ImageNet mean/std on [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from vidseg.models.checkpoint import load_weights
from vidseg.models.convert_tcb import convert_csail_resnet
from vidseg.models.heads.common import check_images

_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4) residual block; keys conv1..3, bn1..3, downsample.{0,1}."""

    expansion = 4
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))  # bn(conv(x)): foldable at inference

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _layer_dilations(output_stride: int) -> tuple[int, int]:
    """Dilation of layer3 and layer4 for an output stride (CSAIL ``dilate_scale``)."""
    table = {8: (2, 4), 16: (1, 2), 32: (1, 1)}
    if output_stride not in table:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return table[output_stride]


class DeepStemResNet(nn.Module):
    """CSAIL deep-stem ResNet returning the four stage outputs.

    Args:
        depth: 50 or 101.
        output_stride: 8 (TCB, default), 16 or 32.

    Attributes:
        out_channels: channels of layer1..layer4, ``(256, 512, 1024, 2048)``.
        out_strides: strides of layer1..layer4, e.g. ``(4, 8, 8, 8)`` at output stride 8.

    Shapes:
        input [B, 3, H, W] -> four tensors [B, C_i, ceil-ish(H / s_i), ...]; at stride 4 the size is
        ``ceil(ceil(ceil(H/2)/2))`` as produced by the stride-2 conv and the 3x3/2 max-pool.
    """

    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))  # the stem: bn(conv(x))

    def __init__(self, *, depth: int = 101, output_stride: int = 8) -> None:
        super().__init__()
        if depth not in _LAYERS:
            raise ValueError(f"depth must be 50 or 101, got {depth}")
        d3, d4 = _layer_dilations(output_stride)
        self.depth, self.output_stride = depth, output_stride
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._inplanes = 128
        blocks = _LAYERS[depth]
        self.layer1 = self._make_layer(64, blocks[0], 1, 1)
        self.layer2 = self._make_layer(128, blocks[1], 2, 1)
        self.layer3 = self._make_layer(256, blocks[2], 2, d3)
        self.layer4 = self._make_layer(512, blocks[3], 2, d4)
        self.out_channels = (256, 512, 1024, 2048)
        self.out_strides = (4, 8, 16 // d3, output_stride)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        """One stage. With ``dilation > 1`` the stride is removed and the first 3x3 gets ``dilation // 2``."""
        first_dilation = 1
        if dilation > 1:
            stride, first_dilation = 1, max(dilation // 2, 1)
        downsample = None
        if stride != 1 or self._inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self._inplanes, planes * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self._inplanes, planes, stride, first_dilation, downsample)]
        self._inplanes = planes * 4
        layers += [Bottleneck(self._inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, 128, H/4, W/4] (three conv-BN-ReLU, max-pool)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.maxpool(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, 3, H, W] normalised RGB -> (layer1, layer2, layer3, layer4)."""
        check_images(x, type(self).__name__)
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return c1, c2, c3, self.layer4(c3)


def build_resnet(*, depth: int = 101, output_stride: int = 8, pretrained: str | None = None) -> DeepStemResNet:
    """Registry builder of ``resnet{50,101}_deepstem_os8``.

    Args:
        depth: 50 or 101.
        output_stride: 8 (default, as TCB), 16 or 32.
        pretrained: optional local path to CSAIL ImageNet weights (``resnet101-imagenet.pth`` layout, ``fc.*``
            ignored) or a checkpoint in this module's own key layout.
    """
    model = DeepStemResNet(depth=depth, output_stride=output_stride)
    if pretrained:

        load_weights(model, pretrained, converter=convert_csail_resnet)
    return model
