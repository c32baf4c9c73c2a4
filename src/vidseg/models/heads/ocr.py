"""Object-contextual representations (OCRNet) as used by TCB-OCR (spec §1.4).

The spatial gather turns soft object regions into one context vector per class; the spatial OCR module lets
every pixel attend to those class contexts. TCB averages the contexts of the frames of a clip before the
attention (``ST-OCR``). All the 1x1 convolutions of the VSPW copy have biases (that is what gives the
official 1,186,560 parameters of ``spatial_ocr_head``).
"""

from __future__ import annotations

import torch
from torch import nn


def gather_object_contexts(logits: torch.Tensor, feats: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Class contexts: softmax over pixels of each class map, then the probability-weighted mean feature.

    Args:
        logits: soft object regions [B, K, h, w].
        feats: pixel features [B, C, h, w] (same h, w).
        scale: multiplier of the logits before the softmax (1 in TCB).

    Returns:
        contexts [B, C, K, 1].
    """
    probs = torch.softmax(scale * logits.flatten(2), dim=2)  # [B, K, hw]
    ctx = torch.bmm(probs, feats.flatten(2).transpose(1, 2))  # [B, K, C]
    return ctx.transpose(1, 2).unsqueeze(3)


def _proj(cin: int, cout: int, two: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if two:
        layers += [nn.Conv2d(cout, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ObjectAttentionBlock(nn.Module):
    """Pixel-to-object attention. Keys ``f_pixel.{0,1,3,4}``, ``f_object.{0,1,3,4}``, ``f_down.{0,1}``, ``f_up.{0,1}``.

    Args:
        in_channels: pixel/context channels (512).
        key_channels: attention channels (256).
    """

    def __init__(self, in_channels: int = 512, key_channels: int = 256) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = _proj(in_channels, key_channels, True)
        self.f_object = _proj(in_channels, key_channels, True)
        self.f_down = _proj(in_channels, key_channels, False)
        self.f_up = _proj(key_channels, in_channels, False)

    def forward(self, x: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """x [B, C, h, w], contexts [B, C, K, 1] -> attended context per pixel [B, C, h, w]."""
        b, _, h, w = x.shape
        query = self.f_pixel(x).flatten(2).transpose(1, 2)  # [B, hw, Ck]
        key = self.f_object(contexts).flatten(2)  # [B, Ck, K]
        value = self.f_down(contexts).flatten(2).transpose(1, 2)  # [B, K, Ck]
        sim = torch.softmax(torch.bmm(query, key) * self.key_channels ** -0.5, dim=-1)
        out = torch.bmm(sim, value).transpose(1, 2).reshape(b, self.key_channels, h, w)
        return self.f_up(out)


class SpatialOCR(nn.Module):
    """OCR module: attention context, then Conv1x1(2C->C)+BN+ReLU+Dropout2d on cat[context, x].

    Keys ``object_context_block.*``, ``conv_bn_dropout.{0,1}``.
    """

    def __init__(self, in_channels: int = 512, key_channels: int = 256, out_channels: int = 512,
                 dropout: float = 0.05) -> None:
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(nn.Conv2d(2 * in_channels, out_channels, 1), nn.BatchNorm2d(out_channels),
                                             nn.ReLU(inplace=True), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """x [B, C, h, w], contexts [B, C, K, 1] -> [B, out, h, w]."""
        context = self.object_context_block(x, contexts)
        return self.conv_bn_dropout(torch.cat([context, x], dim=1))
