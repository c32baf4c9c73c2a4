"""Discriminators of STCNN's adversarial frame-prediction training, selectable by name.

* ``"inception_v3"``: the official one, :class:`~vidseg.models.vos.inception.Inception3` with one output
  (21,787,617 parameters; needs inputs of at least 75x75, e.g. the 1/4-resolution frames 120x214).
* ``"small"``: for CPU runs and tests (our choice, not in the paper): four stride-2 3x3 conv + BN +
  LeakyReLU(0.2) stages (width w, 2w, 4w, 8w; w = 16 by default), global average pooling, a linear layer
  and the sigmoid. About 100k parameters at w = 16; any input of at least 16x16.

Both take frames in [-1, 1], [B, 3, H, W], and return probabilities [B, 1] (use ``nn.BCELoss``).
"""

from __future__ import annotations

import torch
from torch import nn

from vidseg.models.vos.inception import Inception3

DISCRIMINATORS = ("inception_v3", "small")


class SmallDiscriminator(nn.Module):
    """Four strided conv stages, global pooling, linear, sigmoid.

    Args:
        width: channels of the first stage (doubling at each of the four stages).
    """

    def __init__(self, *, width: int = 16) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        in_c = 3
        for i in range(4):
            out_c = width * 2**i
            stages += [nn.Conv2d(in_c, out_c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out_c),
                       nn.LeakyReLU(0.2, inplace=True)]
            in_c = out_c
        self.features = nn.Sequential(*stages)
        self.fc = nn.Linear(in_c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, H, W] in [-1, 1] -> probabilities [B, 1]."""
        return torch.sigmoid(self.fc(self.features(x).mean(dim=(2, 3))))


def build_discriminator(name: str = "inception_v3", *, width: int = 16) -> nn.Module:
    """The discriminator called ``name`` (see the module docstring); ``width`` only applies to ``"small"``."""
    if name == "inception_v3":
        return Inception3(num_classes=1, transform_input=True)
    if name == "small":
        return SmallDiscriminator(width=width)
    raise ValueError(f"unknown discriminator {name!r}; choose one of {DISCRIMINATORS}")
