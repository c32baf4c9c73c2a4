"""Image baselines of VSPW Table 2 and the STSC baseline, as the one-frame case of the video protocol.

* ``pspnet_r101`` / ``ocrnet_r101``: TCB-PPM / TCB-OCR with no support frames (CSAIL-style PSP head with
  ``deepsup`` 0.4; OCR with the ``dsn_head`` 0.4), deep-stem ResNet-101 at output stride 8.
* ``deeplabv3plus_r101``: separable ASPP (12, 24, 36) at output stride 8 + layer1 decoder, aux FCN head on
  layer3 (weight 0.4).
* ``upernet_r101``: UperNet (PPM + FPN, 512 channels) on the deep-stem ResNet-101 at output stride 32 (UperNet
  uses the undilated pyramid), aux FCN head on layer3 (0.4).
* ``upernet_swin_{t,s,b,l}``: UperNet on Swin, aux FCN head on stage 3 (0.4), as the UperNet-Swin recipes.

Every model takes frames [B, T, 3, H, W] and segments the last one (``support_offsets == ()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vidseg.errors import ConfigError
from vidseg.models.backbones.resnet import DeepStemResNet
from vidseg.models.backbones.swin import SwinEncoder, convert_hf_swin
from vidseg.models.base import SegmenterDefaults
from vidseg.models.checkpoint import load_weights
from vidseg.models.convert_tcb import convert_csail_resnet
from vidseg.models.heads.aspp import DeepLabV3PlusHead
from vidseg.models.heads.common import FCNHead, check_clip, check_labels, resize
from vidseg.models.heads.uper import UPerHead
from vidseg.models.losses import PixelLoss
from vidseg.models.video.tcb import TCBOCR, TCBPPM

# official VSPW train.py: DataParallel on 2 GPUs x 4 images, loss = mean of the per-GPU NLLLoss means
VSPW_IMAGE_LOSS_GROUP_SIZE = 4


class ImageSegmenter(SegmenterDefaults, nn.Module):
    """Backbone + head (+ auxiliary head), implementing :class:`~vidseg.models.base.VideoSegmenter` with T = 1.

    Args:
        backbone: module mapping [B, 3, H, W] to a tuple of levels (publishes ``out_channels``).
        head: module mapping the tuple of levels to logits [B, K, h, w].
        num_classes: output classes.
        aux_head: optional deep-supervision head applied to level ``aux_index``.
        aux_index: which level feeds the aux head (2 = ResNet layer3 / Swin stage 3).
        aux_weight: weight of the aux loss (0.4).
        loss: how both loss terms are formed (default: official mmseg 0.x, mean over all pixels; the
            ResNet baselines of VSPW Table 2 get the VSPW code's rule from :func:`baseline_loss`).
    """

    def __init__(self, *, backbone: nn.Module, head: nn.Module, num_classes: int, aux_head: nn.Module | None = None,
                 aux_index: int = 2, aux_weight: float = 0.4, loss: PixelLoss | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode_head = head
        self.auxiliary_head = aux_head
        self.aux_index, self.aux_weight = aux_index, aux_weight
        self.num_classes = num_classes
        self.support_offsets: tuple[int, ...] = ()
        self.pixel_loss = loss if loss is not None else PixelLoss("official", "mmseg")

    def encode_frame(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image [B, 3, H, W] -> backbone levels."""
        return tuple(self.backbone(image))

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Only the last (target) frame's features are used -> logits [B, K, H, W] at ``image_size``."""
        return resize(self.decode_clip_lowres(features, image_size), image_size)

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """The head's logits of the last frame at its own resolution (``decode_clip`` before its resize)."""
        return self.decode_head(features[-1])

    def _train_outputs(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {"logits": self.decode_head(feats)}
        if self.auxiliary_head is not None:
            out["aux"] = self.auxiliary_head(feats[self.aux_index])
        return out

    def forward(self, frames: torch.Tensor) -> Any:
        """frames [B, T, 3, H, W] -> eval: logits of the last frame [B, K, H, W]; train: ``{"logits", "aux"}``."""
        check_clip(frames, type(self).__name__)
        image = frames[:, -1]
        feats = self.encode_frame(image)
        if not self.training:
            return self.decode_clip([feats], image.shape[-2:])
        return self._train_outputs(feats)

    def losses(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loss_seg`` (CE on the last frame) and ``loss_aux`` (aux_weight x CE). labels [B, T, H, W]."""
        check_labels(labels, (outputs["logits"].shape[0], labels.shape[1]), type(self).__name__)
        target = labels[:, -1]
        terms = {"loss_seg": self.pixel_loss(outputs["logits"], target)}
        if "aux" in outputs and self.aux_weight:
            terms["loss_aux"] = self.aux_weight * self.pixel_loss(outputs["aux"], target)
        return terms


def make_backbone(name: str, *, output_stride: int = 8, window_size: int | None = None) -> nn.Module:
    """``resnet101``/``resnet50`` (deep stem) or ``swin_{t,s,b,l}``."""
    if name in ("resnet101", "resnet50"):
        return DeepStemResNet(depth=int(name[6:]), output_stride=output_stride)
    if name.startswith("swin_"):
        return SwinEncoder(variant=name[5:], window_size=window_size)
    raise ConfigError(f"unknown backbone {name!r}; use resnet101, resnet50 or swin_t/s/b/l")


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """ImageNet weights for a backbone: CSAIL ResNet layout or Hugging Face Swin layout."""
    if isinstance(backbone, DeepStemResNet):
        load_weights(backbone, path, converter=convert_csail_resnet)
    else:
        load_weights(backbone, path, converter=convert_hf_swin)


def baseline_loss(backbone: str, reduction: str = "official") -> PixelLoss:
    """The official loss rule of an image baseline.

    ResNet baselines (VSPW Table 2) were trained with the VSPW code (``train.py``: NLL of upsampled
    log-probabilities, DataParallel chunks of 4 images); Swin UperNet with mmsegmentation 0.x (all-pixel mean).
    """
    if backbone.startswith("swin_"):
        return PixelLoss(reduction, "mmseg")
    return PixelLoss(reduction, "vspw", VSPW_IMAGE_LOSS_GROUP_SIZE)


def build_upernet(*, num_classes: int, backbone: str = "resnet101", channels: int = 512, aux_weight: float = 0.4,
                  window_size: int | None = None, cls: type[ImageSegmenter] = ImageSegmenter,
                  **extra: Any) -> ImageSegmenter:
    """UperNet on a ResNet (output stride 32) or Swin backbone, with the aux FCN head on level 2."""
    net = make_backbone(backbone, output_stride=32, window_size=window_size)

    head = UPerHead(net.out_channels, channels, num_classes)
    aux = FCNHead(net.out_channels[2], 256, num_classes, dropout=0.1) if aux_weight else None
    return cls(backbone=net, head=head, num_classes=num_classes, aux_head=aux, aux_weight=aux_weight, **extra)


def _build_deeplab(num_classes: int, backbone: str, aux_weight: float, loss: PixelLoss) -> ImageSegmenter:
    net = make_backbone(backbone, output_stride=8)
    if not isinstance(net, DeepStemResNet):
        raise ConfigError("deeplabv3plus is defined on the ResNet backbones here")
    head = DeepLabV3PlusHead(net.out_channels[-1], net.out_channels[0], 512, num_classes)
    aux = FCNHead(net.out_channels[2], 256, num_classes, dropout=0.1) if aux_weight else None
    return ImageSegmenter(backbone=net, head=head, num_classes=num_classes, aux_head=aux, aux_weight=aux_weight,
                          loss=loss)


def _build_tcb_image(head: str, num_classes: int, backbone: str, aux_weight: float, loss: PixelLoss) -> nn.Module:
    if backbone not in ("resnet101", "resnet50"):
        raise ConfigError(f"{head} baseline is defined on the ResNet backbones, got {backbone!r}")
    encoder = DeepStemResNet(depth=int(backbone[6:]), output_stride=8)
    cls = TCBPPM if head == "psp" else TCBOCR
    return cls(num_classes=num_classes, dilations=(), deep_sup_scale=aux_weight, encoder=encoder, loss=loss)


def build_baseline(*, num_classes: int = 124, head: str = "psp", backbone: str = "resnet101",
                   aux_weight: float = 0.4, window_size: int | None = None, pretrained: str | None = None,
                   pretrained_backbone: str | None = None, loss_reduction: str = "official") -> nn.Module:
    """Registry builder of the image baselines.

    Args:
        num_classes: output classes.
        head: ``psp``, ``ocr``, ``deeplabv3plus`` or ``upernet``.
        backbone: ``resnet101`` (default), ``resnet50``, or ``swin_{t,s,b,l}`` (UperNet only).
        aux_weight: deep-supervision weight (0.4; 0 removes the aux head except for OCR's soft regions).
        window_size: Swin window override.
        pretrained: local checkpoint of the whole model (vidseg layout; ``module.`` stripped).
        pretrained_backbone: local ImageNet weights for the backbone (CSAIL ResNet or HF Swin layout).
        loss_reduction: ``"official"`` (:func:`baseline_loss`) or ``"valid"`` (mean over labelled pixels).
    """
    loss = baseline_loss(backbone, loss_reduction)
    if head in ("psp", "ocr"):
        model = _build_tcb_image(head, num_classes, backbone, aux_weight, loss)
    elif head == "deeplabv3plus":
        model = _build_deeplab(num_classes, backbone, aux_weight, loss)
    elif head == "upernet":
        model = build_upernet(num_classes=num_classes, backbone=backbone, aux_weight=aux_weight,
                              window_size=window_size, loss=loss)
    else:
        raise ConfigError(f"unknown baseline head {head!r}; use psp, ocr, deeplabv3plus or upernet")
    if pretrained_backbone:
        load_backbone_weights(model.backbone if hasattr(model, "backbone") else model.encoder, pretrained_backbone)
    if pretrained:
        load_weights(model, pretrained)
    return model
