"""The interface every video model implements, so streaming inference and training treat them alike.

A video model segments a *target* frame using *support* frames at fixed offsets from it. To let
:class:`vidseg.inference.VideoPredictor` run each frame through the backbone once, the model is split into
a per-frame encoder and a clip decoder::

    feats_t = model.encode_frame(image_t)                 # once per frame, cacheable
    logits  = model.decode_clip([feats_s1, ..., feats_t])  # supports first, target LAST

``forward(frames [B, T, 3, H, W])`` is the training / whole-clip path and must equal
``decode_clip([encode_frame(frames[:, i]) for i in range(T)])`` in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class VideoSegmenter(Protocol):
    """Protocol of video segmentation models (CFFM, TCB, STSC, and image models as the 1-frame case).

    Attributes:
        support_offsets: offsets of the support frames relative to the target in the default (online,
            causal) mode, e.g. CFFM ``(-9, -6, -3)``; image models have ``()``.
        num_classes: number of output classes.
    """

    support_offsets: tuple[int, ...]
    num_classes: int

    def encode_frame(self, image: torch.Tensor) -> Any:
        """Per-frame features. image: [B, 3, H, W] -> features (tensor or tuple of tensors)."""

    def decode_clip(self, features: Sequence[Any], image_size: tuple[int, int]) -> torch.Tensor:
        """Logits of the target (last) frame, [B, K, H, W] at ``image_size``, from per-frame features."""

    def reset_state(self) -> None:
        """Forget any state carried between frames of a video (e.g. TCB's object-region memory)."""
