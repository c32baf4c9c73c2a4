"""SegFormer-B0..B5 image baselines (MiT encoder + all-MLP decoder, embed 256 as in the VSPW configs).

Implements :class:`vidseg.models.base.VideoSegmenter` as the one-frame case: ``support_offsets == ()``,
``forward`` takes [B, T, 3, H, W] (or [B, 3, H, W]) and segments the last frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vidseg.models.backbones.mit import MiT
from vidseg.models.base import SegmenterDefaults
from vidseg.models.heads.common import check_clip, resize
from vidseg.models.heads.segformer_head import SegFormerHead
from vidseg.models.losses import PixelLoss


def check_head_fits(backbone: nn.Module, decode_head: nn.Module) -> None:
    """Raise if the head's input widths are not the backbone's published output channels."""
    if tuple(backbone.out_channels) != tuple(decode_head.in_channels):
        raise ValueError(f"head in_channels {decode_head.in_channels} != backbone out_channels "
                         f"{tuple(backbone.out_channels)}")


def last_frame_labels(labels: torch.Tensor) -> torch.Tensor:
    """Labels of the target frame: [B, T, H, W] -> [B, H, W]; [B, H, W] passes through."""
    if labels.dim() == 4:
        return labels[:, -1]
    if labels.dim() == 3:
        return labels
    raise ValueError(f"labels must be [B, T, H, W] or [B, H, W], got shape {tuple(labels.shape)}")


class SegFormer(SegmenterDefaults, nn.Module):
    """SegFormer: MiT backbone + all-MLP head.

    Args:
        backbone: a :class:`MiT`.
        decode_head: a :class:`SegFormerHead` whose ``in_channels`` equal the backbone's ``out_channels``.
        loss: how the CE is reduced (default: official, mmseg 0.x mean over all pixels).

    Attributes:
        support_offsets: ``()`` (image model).
        num_classes: K.
    """

    support_offsets: tuple[int, ...] = ()

    def __init__(self, *, backbone: MiT, decode_head: SegFormerHead, loss: PixelLoss | None = None) -> None:
        super().__init__()
        check_head_fits(backbone, decode_head)
        self.backbone = backbone
        self.decode_head = decode_head
        self.num_classes = decode_head.num_classes
        self.pixel_loss = loss if loss is not None else PixelLoss("official", "mmseg")

    def encode_frame(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] -> logits [B, K, ceil(H/4), ceil(W/4)] at 1/4."""
        return self.decode_head(self.backbone(image))

    def decode_clip(self, features: Sequence[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """Upsample the last frame's 1/4 logits to ``image_size``: -> [B, K, H, W]."""
        return resize(self.decode_clip_lowres(features, image_size), image_size)

    def decode_clip_lowres(self, features: Sequence[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """The last frame's 1/4 logits [B, K, ceil(H/4), ceil(W/4)] (``decode_clip`` before its resize)."""
        if len(features) == 0:
            raise ValueError("decode_clip needs the features of at least the target frame")
        return features[-1]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Segment the last frame.

        Args:
            frames: [B, T, 3, H, W] (target last) or [B, 3, H, W].

        Returns:
            train: logits [B, K, H/4, W/4] (rounded up); eval: logits [B, K, H, W].
        """
        frames = check_clip(frames, "SegFormer", allow_image=True)
        image = frames[:, -1]
        logits = self.encode_frame(image)
        if self.training:
            return logits
        return self.decode_clip([logits], tuple(image.shape[-2:]))

    def losses(self, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss_ce": CE}`` of the 1/4 logits upsampled to the last frame's labels (255 = ignore)."""
        return {"loss_ce": self.pixel_loss(outputs, last_frame_labels(labels))}


def build_segformer(*, variant: str = "b0", num_classes: int = 124, embed_dim: int = 256,
                    with_conv_seg: bool = False, drop_path_rate: float = 0.1,
                    official_eps: bool = True, loss_reduction: str = "official") -> SegFormer:
    """Registry builder of ``segformer_b0`` .. ``segformer_b5``.

    Args:
        variant: MiT variant ``"b0"`` .. ``"b5"``.
        num_classes: K (124 for VSPW).
        embed_dim: MLP decoder width (256 in the VSPW configs for all variants; ADE configs use 768 for B2+).
        with_conv_seg: add the official, unused ``decode_head.conv_seg`` (frozen) for key compatibility.
        drop_path_rate: backbone stochastic depth.
        official_eps: official per-module LayerNorm eps in the backbone.
        loss_reduction: ``"official"`` (mmseg 0.x, as the CFFM repository's SegFormer runs: CE summed over
            labelled pixels / all pixels) or ``"valid"`` (mean over labelled pixels).
    """
    backbone = MiT(variant=variant, drop_path_rate=drop_path_rate, official_eps=official_eps)
    head = SegFormerHead(in_channels=backbone.out_channels, num_classes=num_classes, embed_dim=embed_dim,
                         with_conv_seg=with_conv_seg)
    return SegFormer(backbone=backbone, decode_head=head, loss=PixelLoss(loss_reduction, "mmseg"))
