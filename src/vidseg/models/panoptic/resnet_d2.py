"""detectron2-layout ResNet (frozen BN, stride in the 1x1 conv) as used by PanopticFCN / Clip-PanoFCN.

Key names follow detectron2 exactly (``stem.conv1``, ``res2.0.conv1``, ``res2.0.conv1.norm``,
``res2.0.shortcut``...), so a detectron2 checkpoint loads without renaming. Differences from torchvision's
ResNet: the stride of a stage's first bottleneck sits on its first 1x1 conv (``STRIDE_IN_1X1``, the MSRA
weights), the BN layers are ``FrozenBatchNorm2d`` (buffers only: ``weight, bias, running_mean, running_var``,
no parameters), and the stem and res2 are frozen (``FREEZE_AT = 2``).

Inputs: RGB images, 0..255 minus the pixel mean, std 1 (detectron2's MSRA convention for this model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms (detectron2 v0.6); all four tensors are buffers.

    Computes ``x * scale + shift`` with ``scale = weight / sqrt(running_var + eps)`` and
    ``shift = bias - running_mean * scale``. Like detectron2, a fresh module has ``running_var = 1 - eps``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> same shape (the fused ``batch_norm`` op without grad, as detectron2)."""
        if not x.requires_grad:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                                eps=self.eps)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)


class Conv2d(nn.Conv2d):
    """detectron2 ``Conv2d``: an ``nn.Conv2d`` followed by an optional ``norm`` module and activation."""

    def __init__(self, *args, norm: nn.Module | None = None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def c2_msra_fill(module: nn.Conv2d) -> None:
    """fvcore ``c2_msra_fill``: kaiming normal (fan_out, ReLU) weights, zero bias."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def c2_xavier_fill(module: nn.Conv2d) -> None:
    """fvcore ``c2_xavier_fill``: kaiming uniform with a = 1, zero bias."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class BottleneckBlock(nn.Module):
    """1x1 (stride) -> 3x3 -> 1x1 residual block with frozen BN; keys conv1..3(.norm), shortcut(.norm)."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int, stride: int) -> None:
        super().__init__()
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, 1, stride=stride, bias=False,
                                   norm=FrozenBatchNorm2d(out_channels))
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, stride=stride, bias=False,
                            norm=FrozenBatchNorm2d(bottleneck_channels))
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, padding=1, bias=False,
                            norm=FrozenBatchNorm2d(bottleneck_channels))
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False, norm=FrozenBatchNorm2d(out_channels))
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class BasicStem(nn.Module):
    """7x7/2 conv + frozen BN + ReLU + 3x3/2 max-pool (key ``stem.conv1``)."""

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = Conv2d(3, out_channels, 7, stride=2, padding=3, bias=False,
                            norm=FrozenBatchNorm2d(out_channels))
        c2_msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNetD2(nn.Module):
    """detectron2 ResNet returning ``{"res2": 1/4, "res3": 1/8, "res4": 1/16, "res5": 1/32}``.

    Args:
        blocks: bottlenecks per stage, e.g. ``(3, 4, 6, 3)`` for R50.
        width: stem width = bottleneck width of res2 (64 for R50); stage ``s`` has bottleneck width
            ``width * 2**s`` and ``4x`` that many output channels.
        freeze_at: stages frozen (``requires_grad = False``): 1 = stem, 2 = stem and res2 (detectron2 default).
    """

    def __init__(self, blocks: Sequence[int] = BLOCKS[50], width: int = 64, freeze_at: int = 2) -> None:
        super().__init__()
        if len(blocks) != 4:
            raise ValueError(f"ResNetD2 needs 4 stages, got blocks={tuple(blocks)}")
        self.stem = BasicStem(width)
        in_channels = width
        self.out_channels: dict[str, int] = {}
        self.stage_names = ("res2", "res3", "res4", "res5")
        for index, (name, count) in enumerate(zip(self.stage_names, blocks)):
            bottleneck, out = width * 2 ** index, width * 4 * 2 ** index
            stage = nn.Sequential(*[
                BottleneckBlock(in_channels if i == 0 else out, out, bottleneck,
                                stride=2 if (i == 0 and index > 0) else 1)
                for i in range(count)
            ])
            self.add_module(name, stage)
            in_channels = out
            self.out_channels[name] = out
        self.strides = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
        frozen = [self.stem, *(getattr(self, n) for n in self.stage_names)][:freeze_at]
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [N, 3, H, W] (H, W multiples of 32) -> dict of stage outputs."""
        x = self.stem(x)
        out = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            out[name] = x
        return out
