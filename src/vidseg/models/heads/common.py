"""Small building blocks shared by the heads and models, and early input checks.

The Sequential layouts (``conv, bn, relu, ...``) are kept index-compatible with the official code so that
state-dict keys such as ``deepsup.0.weight`` / ``deepsup.4.bias`` convert without renaming.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vidseg.errors import VidsegError


class InputShapeError(VidsegError, ValueError):
    """A tensor given to a model has the wrong rank, channel count or size."""


def check_images(x: torch.Tensor, who: str, channels: int = 3) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is a float [B, channels, H, W] tensor."""
    if not isinstance(x, torch.Tensor):
        raise InputShapeError(f"{who}: expected a tensor [B, {channels}, H, W], got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise InputShapeError(f"{who}: expected images [B, {channels}, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputShapeError(f"{who}: expected a float tensor (normalised RGB), got {x.dtype}")


def check_clip(frames: torch.Tensor, who: str, num_frames: int | None = None, *,
               allow_image: bool = False) -> torch.Tensor:
    """The one input check of clip models: ``frames`` must be [B, T, 3, H, W] (target last).

    Args:
        frames: the model input.
        who: model name for the message.
        num_frames: required T, if any.
        allow_image: accept [B, 3, H, W] as a one-frame clip (image models).

    Returns:
        ``frames`` as [B, T, 3, H, W].

    Raises:
        InputShapeError: any other shape (a ``ValueError``).
    """
    if allow_image and isinstance(frames, torch.Tensor) and frames.dim() == 4:
        frames = frames.unsqueeze(1)
    if not isinstance(frames, torch.Tensor) or frames.dim() != 5 or frames.shape[2] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        also = " or [B, 3, H, W]" if allow_image else ""
        raise InputShapeError(f"{who} expects frames [B, T, 3, H, W] (target last){also}, got {shape}")
    if num_frames is not None and frames.shape[1] != num_frames:
        raise InputShapeError(f"{who}: expected T = {num_frames} frames (supports then target), "
                              f"got T = {frames.shape[1]}")
    return frames


def check_labels(labels: torch.Tensor, frames_shape: tuple[int, ...], who: str) -> None:
    """Labels must be integer [B, T, H, W] with the same B and T as the frames."""
    if labels.dim() != 4 or tuple(labels.shape[:2]) != tuple(frames_shape[:2]):
        raise InputShapeError(f"{who}: expected labels [B, T, H, W] with B, T = {tuple(frames_shape[:2])}, "
                              f"got {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise InputShapeError(f"{who}: labels must be an integer tensor (classes, 255 = ignore), got {labels.dtype}")


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, *, bias: bool = False, dilation: int = 1) -> list[nn.Module]:
    """[Conv(kernel, 'same' padding), BN, ReLU] as a list to splice into an index-compatible Sequential."""
    pad = dilation * (kernel // 2)
    return [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=bias), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False`` (the convention of all the official heads)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class FCNHead(nn.Sequential):
    """Deep-supervision / auxiliary head: Conv3x3+BN+ReLU, Dropout2d, Conv1x1 (keys ``0,1,4``).

    Args:
        in_channels: input channels (e.g. 1024 for ResNet layer3).
        channels: hidden channels.
        num_classes: output classes.
        dropout: Dropout2d rate.
        bias: whether the 3x3 conv has a bias (TCB-OCR's ``dsn_head`` has one, ``deepsup`` does not).
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, dropout: float = 0.1,
                 bias: bool = False) -> None:
        super().__init__(*conv_bn_relu(in_channels, channels, 3, bias=bias), nn.Dropout2d(dropout),
                         nn.Conv2d(channels, num_classes, 1))
