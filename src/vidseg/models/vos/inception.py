"""Inception-v3 with torchvision's module layout: STCNN's discriminator (spec §5.3).

The official pretraining uses torchvision's ``Inception3(num_classes=1, aux_logits=False,
transform_input=True)`` whose ``forward`` ends with a sigmoid (the loss is ``nn.BCELoss`` on probabilities).
torchvision is not usable here, so the network is written out; module names (``Conv2d_1a_3x3``, ``Mixed_5b``
... ``Mixed_7c``, ``fc``; inside each block ``branch*`` made of ``conv`` + ``bn``) give exactly torchvision's
state-dict keys, so the official ``NetD_epoch-*.pth`` (566 keys) and torchvision's ImageNet
``inception_v3_google`` weights (without ``fc`` / ``AuxLogits``) load. 21,787,617 parameters with one output.
The auxiliary classifier is not built (the official discriminator disables it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ImageNet statistics behind ``transform_input`` (torchvision's: maps [-1, 1] input to ImageNet normalisation)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class BasicConv2d(nn.Module):
    """Conv (no bias) + BN (eps 1e-3) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, H, W] -> [B, C_out, H', W']."""
        return F.relu(self.bn(self.conv(x)))


def _chain(x: torch.Tensor, *convs: nn.Module) -> torch.Tensor:
    for conv in convs:
        x = conv(x)
    return x


def _pool3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 (64 + 64 + 96 + pool_features channels)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> [B, 224 + pool_features, H, W]."""
        return torch.cat([self.branch1x1(x), _chain(x, self.branch5x5_1, self.branch5x5_2),
                          _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                          self.branch_pool(_pool3(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> [B, 480 + C, (H-3)/2+1, (W-3)/2+1]."""
        return torch.cat([self.branch3x3(x),
                          _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (192 channels per branch, 768 out)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the 1x7 and 7x1 convs
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv2d(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 768, H, W] -> [B, 768, H, W]."""
        dbl = (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
               self.branch7x7dbl_5)
        return torch.cat([self.branch1x1(x), _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                          _chain(x, *dbl), self.branch_pool(_pool3(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 768, H, W] -> [B, 1280, (H-3)/2+1, (W-3)/2+1]."""
        return torch.cat([_chain(x, self.branch3x3_1, self.branch3x3_2),
                          _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3,
                                 self.branch7x7x3_4),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs (320 + 768 + 768 + 192 = 2048 channels)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> [B, 2048, H, W]."""
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(_pool3(x))], 1)


class Inception3(nn.Module):
    """Inception-v3 classifier ending in a sigmoid (the official discriminator's forward).

    Args:
        num_classes: outputs (1 for the discriminator).
        transform_input: map [-1, 1] input to ImageNet normalisation first (True in STCNN).
        dropout: dropout probability before ``fc`` (0.5; active in train mode only).
    """

    def __init__(self, *, num_classes: int = 1, transform_input: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.dropout = dropout
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.fc = nn.Linear(2048, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated normal (std 0.1, cut at 2 std) for convs and fc, BN 1/0 (the official init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, 0.0, 0.1, -0.2, 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.new_tensor(_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(_STD).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, H, W] (H, W >= 75) -> probabilities [B, num_classes] (sigmoid applied)."""
        if x.shape[-1] < 75 or x.shape[-2] < 75:
            raise ValueError(f"Inception3: input {tuple(x.shape)} is smaller than 75x75")
        if self.transform_input:
            x = self._transform(x)
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                   self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = F.dropout(x, self.dropout, training=self.training)
        return torch.sigmoid(self.fc(x))
