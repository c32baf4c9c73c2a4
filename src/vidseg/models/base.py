"""The interface every video model implements, so streaming inference and training treat them alike.

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

    def forward(self, frames: torch.Tensor) -> Any:
        """frames [B, T, 3, H, W] (target last) -> eval: logits [B, K, H, W]; train: outputs for ``losses``."""

    def losses(self, outputs: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms from ``forward``'s train-mode outputs and labels [B, T, H, W] (255 = ignore)."""

    def reset_state(self) -> None:
        """Forget any state carried between frames of a video (e.g. TCB's object-region memory)."""
