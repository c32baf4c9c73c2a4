"""The contracts every model implements, so streaming inference, training and the registry treat them alike.

A video model segments a *target* frame using *support* frames at fixed offsets from it. To let
:class:`vidseg.inference.VideoPredictor` run each frame through the backbone once, the model is split into
a per-frame encoder and a clip decoder::

    feats_t = model.encode_frame(image_t)                 # once per frame, cacheable
    logits  = model.decode_clip([feats_s1, ..., feats_t])  # supports first, target LAST

``forward(frames [B, T, 3, H, W])`` is the training / whole-clip path. In eval mode it returns the target's
logits [B, K, H, W] at the input size and must equal
``decode_clip([encode_frame(frames[:, i]) for i in range(T)], (H, W))``. In train mode it returns whatever
``losses(outputs, labels [B, T, H, W])`` needs; ``losses`` returns a dict of already-weighted loss terms whose
sum is the training loss (e.g. CFFM: 0.5 x per-frame CE + 1.0 x target CE; TCB: target CE + 0.4 x deep
supervision). Image models are the T = 1 case (``support_offsets == ()``) and segment the last frame.

The predictor reads only what :class:`VideoSegmenter` declares (no probing for optional attributes):
``test_rule`` picks the clip rule in :data:`vidseg.inference.rules.RULES`, ``stateful`` says whether a
skipped target must still be decoded, ``support_features`` trims what a decoded target keeps as a support.
:class:`SegmenterDefaults` gives the common values, so a stateless model only states what differs.

Backbones publish their outputs through :class:`Backbone`: ``out_channels`` and ``out_strides``, one entry per
output level (detectron2's ``output_shape``, timm's ``feature_info``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Backbone(Protocol):
    """Protocol of backbones: ``forward(image [B, 3, H, W])`` returns one map per level.

    Attributes:
        out_channels: channels of each output level, e.g. MiT-B0 ``(32, 64, 160, 256)``.
        out_strides: stride of each output level relative to the input, e.g. ``(4, 8, 16, 32)``.
    """

    out_channels: tuple[int, ...]
    out_strides: tuple[int, ...]


@runtime_checkable
class VideoSegmenter(Protocol):
    """Protocol of video segmentation models (CFFM, TCB, STSC, and image models as the 1-frame case).

    Attributes:
        num_classes: number of output classes.
        support_offsets: offsets of the support frames relative to the target in the default (online,
            causal) mode, e.g. CFFM ``(-9, -6, -3)``; image models have ``()``.
        offline_support_offsets: supports of the offline (future-looking) test rule, e.g. TCB ``(3, 6, 9)``;
            ``()`` when the model has none.
        test_rule: name of the test-time clip rule (a key of :data:`vidseg.inference.rules.RULES`:
            ``"offsets"``, ``"cffm"``, ``"tcb"``); the registry entry states it and ``build`` sets it.
        stateful: True when decoding a target updates state carried to later targets (TCB's memory).
    """

    num_classes: int
    support_offsets: tuple[int, ...]
    offline_support_offsets: tuple[int, ...]
    test_rule: str
    stateful: bool

    def encode_frame(self, image: torch.Tensor) -> Any:
        """Per-frame features. image: [B, 3, H, W] -> features (tensor or tuple of tensors)."""

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Logits of the target (last) frame, [B, K, H, W] at ``image_size``, from per-frame features."""

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """The target's logits before their final bilinear resize: [B, K, h, w] such that ``decode_clip`` is
        ``heads.common.resize(decode_clip_lowres(...), image_size)`` (lets inference upsample only what it needs).
        """

    def support_features(self, features: Any) -> Any:
        """What a frame's features keep once it was decoded as a target and only serves as a support."""

    def forward(self, frames: torch.Tensor) -> Any:
        """frames [B, T, 3, H, W] (target last) -> eval: logits [B, K, H, W]; train: outputs for ``losses``."""

    def losses(self, outputs: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms from ``forward``'s train-mode outputs and labels [B, T, H, W] (255 = ignore)."""

    def reset_state(self) -> None:
        """Forget any state carried between frames of a video (e.g. TCB's object-region memory)."""


class SegmenterDefaults:
    """The usual values of :class:`VideoSegmenter`'s optional parts; mix in before ``nn.Module``.

    A stateless model using the generic offset rule, with no offline rule, keeping all features of supports.
    """

    test_rule: str = "offsets"
    offline_support_offsets: tuple[int, ...] = ()
    stateful: bool = False

    def decode_clip_lowres(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """No lower-resolution logits known: ``decode_clip`` itself ([B, K, H, W] at ``image_size``)."""
        return self.decode_clip(features, image_size)  # type: ignore[attr-defined]

    def support_features(self, features: Any) -> Any:
        """All features are kept (identity)."""
        return features

    def reset_state(self) -> None:
        """Stateless: nothing to forget between videos."""
