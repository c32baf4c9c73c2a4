"""detectron2-layout FPN (P2-P5, plus P6/P7 from P5) and the Panoptic-FPN semantic branch (``SemanticFPN``).

Keys: ``fpn_lateral{2-5}``, ``fpn_output{2-5}``, ``top_block.p6``/``p7``, ``bottom_up.*`` (the ResNet);
``SemanticFPN``: ``p{2-5}.{k}`` convs with ``.norm`` GroupNorm (index k skips the upsampling modules).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.panoptic.resnet_d2 import Conv2d, ResNetD2, c2_msra_fill, c2_xavier_fill

FPN_LEVELS = ("p2", "p3", "p4", "p5", "p6", "p7")
FPN_STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(P5), P7 = conv3x3/2(relu(P6)) (RetinaNet-style, from the FPN output P5)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            c2_xavier_fill(module)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class FPN(nn.Module):
    """Feature pyramid on a detectron2 ResNet (sum fusion, nearest x2 top-down, no norm).

    Args:
        bottom_up: the ResNet.
        channels: FPN width (256).

    ``forward(x [N, 3, H, W])`` returns ``{"p2": 1/4, ..., "p7": 1/128}``, each [N, channels, h, w];
    H and W must be multiples of 32 (``size_divisibility``).
    """

    size_divisibility = 32

    def __init__(self, bottom_up: ResNetD2, channels: int = 256) -> None:
        super().__init__()
        self.bottom_up = bottom_up
        self.channels = channels
        for level, name in zip(range(2, 6), bottom_up.stage_names):
            lateral = Conv2d(bottom_up.out_channels[name], channels, 1)
            output = Conv2d(channels, channels, 3, padding=1)
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            self.add_module(f"fpn_lateral{level}", lateral)
            self.add_module(f"fpn_output{level}", output)
        self.top_block = LastLevelP6P7(channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.bottom_up(x)
        prev = self.fpn_lateral5(feats["res5"])
        results = [self.fpn_output5(prev)]
        for level in (4, 3, 2):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = getattr(self, f"fpn_lateral{level}")(feats[f"res{level}"]) + top_down
            results.insert(0, getattr(self, f"fpn_output{level}")(prev))
        results.extend(self.top_block(results[-1]))
        return dict(zip(FPN_LEVELS, results))


class SemanticFPN(nn.Module):
    """Panoptic-FPN semantic branch: per level, (conv3x3 + GN + ReLU [+ bilinear x2]) until stride 4; summed.

    Args:
        in_channels: FPN width.
        channels: branch width (256).
        gn_groups: GroupNorm groups (32).
        levels: FPN levels used (P2-P5).
    """

    def __init__(self, in_channels: int = 256, channels: int = 256, gn_groups: int = 32,
                 levels: tuple[str, ...] = ("p2", "p3", "p4", "p5"), common_stride: int = 4) -> None:
        super().__init__()
        self.levels = levels
        for level in levels:
            stride = FPN_STRIDES[level]
            ops: list[nn.Module] = []
            for k in range(max(1, int(math.log2(stride) - math.log2(common_stride)))):
                conv = Conv2d(in_channels if k == 0 else channels, channels, 3, padding=1, bias=False,
                              norm=nn.GroupNorm(gn_groups, channels), activation=F.relu)
                c2_msra_fill(conv)
                ops.append(conv)
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(level, nn.Sequential(*ops))

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """features: FPN outputs -> [N, channels, H/4, W/4]."""
        out = None
        for level in self.levels:
            y = getattr(self, level)(features[level])
            out = y if out is None else out + y
        return out
