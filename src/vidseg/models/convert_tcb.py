"""Converters from the official TCB / CSAIL checkpoint layouts (spec §1.2-1.4) to vidseg's.

* CSAIL ImageNet ResNet (``resnet101-imagenet.pth``): keys ``conv1..3``, ``bn1..3``, ``layer{1-4}.*`` are
  exactly :class:`vidseg.models.backbones.resnet.DeepStemResNet`'s; ``fc.*`` is dropped. A checkpoint of a
  whole CSAIL segmentation model (``encoder.*``) is accepted too.
* TCB checkpoints (``model_epoch_120.pth`` of ``Clip_PSP`` / ``ClipOCRNet``, saved from ``nn.DataParallel``):
  the ``module.`` prefix is removed; the remaining keys (``encoder.*``, ``ppm_conv.*``, ``deepsup.*``,
  ``conv_3x3.*``, ``spatial_ocr_head.*``, ``head.*``, ``dsn_head.*``) are vidseg's layout unchanged.

Usage::

    load_weights(model, "model_epoch_120.pth", converter=convert_tcb_checkpoint)
    load_weights(model.encoder, "resnet101-imagenet.pth", converter=convert_csail_resnet)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from vidseg.models.checkpoint import strip_prefix

_RESNET_PREFIXES = ("conv1.", "bn1.", "conv2.", "bn2.", "conv3.", "bn3.", "layer1.", "layer2.", "layer3.", "layer4.")


def convert_csail_resnet(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CSAIL ImageNet deep-stem ResNet -> ``DeepStemResNet`` keys (``fc.*`` and non-ResNet keys dropped)."""
    state = strip_prefix(strip_prefix(state, "module."), "encoder.")
    return {k: v for k, v in state.items() if k.startswith(_RESNET_PREFIXES)}


def convert_tcb_checkpoint(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official TCB (``Clip_PSP`` / ``ClipOCRNet``) state dict -> vidseg TCB keys (strip ``module.``)."""
    return strip_prefix(state, "module.")
