"""Core data structures shared by readers, models, metrics and inference.

Conventions (see DESIGN.md):

* Semantic labels: classes ``0..K-1``, ``255`` = ignore.
* Panoptic ids: ``category * label_divisor + instance`` as int32; ``0`` is reserved for void. For stuff the
  instance is 0, for things it starts at 1 (``label_divisor`` defaults to 1000 so that VIPSeg thing ids,
  which can reach ~100 per category, never collide). Category ids here are the 0-based VIPSeg ids, shifted
  by one (``category + 1``) so that category 0 (wall) is distinguishable from void.
* Frame order inside a clip: past to present, target last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily so that `import vidseg` (and metric workers) stay light
    import torch

IGNORE_LABEL = 255
DEFAULT_LABEL_DIVISOR = 1000


@dataclass
class Clip:
    """A few frames of one video, ready for a model.

    Attributes:
        frames: float tensor [T, C, H, W] (normalised as the transform decided), target frame last.
        labels: long tensor [T, H, W] with classes 0..K-1 and 255 = ignore, or None when unlabelled.
        frame_indices: index of each frame in its video, length T.
        video: name of the video the clip comes from.
    """

    frames: torch.Tensor
    labels: torch.Tensor | None = None
    frame_indices: tuple[int, ...] = ()
    video: str = ""

    def __post_init__(self) -> None:
        if self.frames.ndim != 4:
            raise ValueError(f"Clip.frames must be [T, C, H, W], got shape {tuple(self.frames.shape)}")
        if self.labels is not None and (
            self.labels.ndim != 3 or self.labels.shape[0] != self.frames.shape[0]
            or self.labels.shape[-2:] != self.frames.shape[-2:]
        ):
            raise ValueError(
                f"Clip.labels must be [T, H, W] matching frames {tuple(self.frames.shape)}, "
                f"got {tuple(self.labels.shape)}"
            )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class ClipBatch:
    """A batch of clips of equal length and size.

    Attributes:
        frames: float tensor [B, T, C, H, W], target frame last.
        labels: long tensor [B, T, H, W] or None.
        frame_indices: per clip, the frame indices in its video.
        videos: per clip, the video name.
    """

    frames: torch.Tensor
    labels: torch.Tensor | None = None
    frame_indices: list[tuple[int, ...]] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.frames.ndim != 5:
            raise ValueError(f"ClipBatch.frames must be [B, T, C, H, W], got shape {tuple(self.frames.shape)}")

    @classmethod
    def collate(cls, clips: list[Clip]) -> ClipBatch:
        """Stack clips of equal shape into a batch."""
        import torch

        if not clips:
            raise ValueError("cannot collate an empty list of clips")
        shapes = {tuple(c.frames.shape) for c in clips}
        if len(shapes) != 1:
            raise ValueError(f"clips differ in shape: {sorted(shapes)}")
        labels = None
        if all(c.labels is not None for c in clips):
            labels = torch.stack([c.labels for c in clips])  # type: ignore[misc]
        return cls(
            frames=torch.stack([c.frames for c in clips]),
            labels=labels,
            frame_indices=[c.frame_indices for c in clips],
            videos=[c.video for c in clips],
        )

    def to(self, device: torch.device | str) -> ClipBatch:
        """Move tensors to ``device`` (returns a new batch)."""
        return ClipBatch(
            frames=self.frames.to(device),
            labels=None if self.labels is None else self.labels.to(device),
            frame_indices=self.frame_indices,
            videos=self.videos,
        )

    @property
    def batch_size(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[1])


# ----------------------------------------------------------------------------------------------------------
# Panoptic id helpers
# ----------------------------------------------------------------------------------------------------------

def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """Decode COCO-panoptic RGB ids: ``id = R + 256 G + 65536 B``.

    Args:
        rgb: uint8 array [H, W, 3].

    Returns:
        int64 array [H, W].
    """
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb2id expects [H, W, 3], got shape {rgb.shape}")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Encode ids as COCO-panoptic RGB (inverse of :func:`rgb2id`).

    Args:
        ids: integer array [H, W] with values in 0 .. 2**24-1.

    Returns:
        uint8 array [H, W, 3].
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError("id2rgb: ids must lie in 0 .. 2**24-1")
    out = np.empty(ids.shape + (3,), dtype=np.uint8)
    out[..., 0] = ids % 256
    out[..., 1] = (ids // 256) % 256
    out[..., 2] = ids // 65536
    return out


def encode_panoptic(category: np.ndarray, instance: np.ndarray,
                    label_divisor: int = DEFAULT_LABEL_DIVISOR) -> np.ndarray:
    """Library panoptic ids from 0-based categories and instance numbers.

    Args:
        category: int array [H, W] with 0-based category ids, or 255 for void.
        instance: int array [H, W]; 0 for stuff / no instance.

    Returns:
        int32 array [H, W]: ``(category + 1) * label_divisor + instance``, 0 where category is void.
    """
    category = np.asarray(category, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    if instance.size and instance.max(initial=0) >= label_divisor:
        raise ValueError(f"instance ids must be < label_divisor ({label_divisor})")
    ids = (category + 1) * label_divisor + instance
    ids[category == IGNORE_LABEL] = 0
    return ids.astype(np.int32)


def decode_panoptic(ids: np.ndarray, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_panoptic`.

    Returns:
        (category [H, W] with 255 for void, instance [H, W]).
    """
    ids = np.asarray(ids, dtype=np.int64)
    category = ids // label_divisor - 1
    instance = ids % label_divisor
    category[ids == 0] = IGNORE_LABEL
    instance[ids == 0] = 0
    return category, instance
