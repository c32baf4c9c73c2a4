"""VIPSeg clips for panoptic training (Clip-PanoFCN), ``specs/models.md`` §4.3.

A training item is 3 consecutive frames (:class:`vidseg.data.sampling.ConsecutiveSampler`: start uniform in
``[0, len - 3)``, short videos repeat their last frame) with ONE augmentation drawn per clip and replayed on every
frame (the official mapper draws it on frame 0): detectron2 ``ResizeShortestEdge`` (a short edge chosen from
608..1440, long edge at most 4096; PIL bilinear for frames, nearest for labels) -> ``RandomCrop_CategoryAreaConstraint``
608x608 with ``single_category_max_area`` 1.0, which detectron2 turns into a plain random crop
(:class:`vidseg.data.transforms.RandomCrop`) -> horizontal flip 0.5. Frames are RGB minus
[123.675, 116.28, 103.53], std 1 (the official PIXEL_MEAN/STD).

``Clip.labels`` are library panoptic ids (int64 [T, H, W], ``(category + 1) * 1000 + instance``, 0 void), which
:class:`vidseg.models.panoptic.losses.PanopticFCNLoss` turns into targets.

Example::

    ds = vipseg_train_dataset("data/VIPSeg_720P", "train")
    clip = ds[0]   # frames [3, 3, 608, 608], labels [3, 608, 608]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidseg.data.dataset import ClipDataset
from vidseg.data.layout import detect_layout
from vidseg.data.sampling import ConsecutiveSampler
from vidseg.data.transforms import ClipData, Compose, RandomCrop, RandomFlip, ToTensor
from vidseg.data.vipseg import VIPSeg720Dataset, VIPSegRawDataset
from vidseg.errors import DataError

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (1.0, 1.0, 1.0)
MIN_SIZES = (608, 748, 806, 864, 922, 980, 1036, 1094, 1152, 1206, 1267, 1324, 1382, 1440)
MAX_SIZE = 4096
CROP = 608


def shortest_edge_size(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: (new_h, new_w) with the short edge ``short``,
    scaled down so the long edge is at most ``max_size``, rounded half up."""
    scale = short / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        s = max_size / max(newh, neww)
        newh, neww = newh * s, neww * s
    return int(newh + 0.5), int(neww + 0.5)


def _pil_resize(arr: np.ndarray, size_hw: tuple[int, int], nearest: bool) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(arr)
    out = img.resize((size_hw[1], size_hw[0]), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(out).astype(arr.dtype, copy=False)


@dataclass(frozen=True)
class ResizeShortestEdge:
    """detectron2 ``ResizeShortestEdge`` with ``sample_style="choice"``, one draw per clip.

    Args:
        short_edges: candidate short-edge lengths.
        max_size: longest allowed long edge.
    """

    short_edges: tuple[int, ...] = MIN_SIZES
    max_size: int = MAX_SIZE

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        short = int(self.short_edges[int(rng.integers(0, len(self.short_edges)))])
        size = shortest_edge_size(*data.size, short, self.max_size)
        if size == data.size:
            return data
        return data.map(lambda f: _pil_resize(f, size, nearest=False),
                        lambda lab: _pil_resize(lab, size, nearest=True))


@dataclass(frozen=True)
class PadToDivisor:
    """Pad bottom/right to a multiple of ``divisor`` (the network needs multiples of 32).

    detectron2 pads the *normalised* batch with 0, i.e. with the pixel mean; frames here are padded with the
    rounded mean colour and labels with 0 (void). The recipe's 608 crop of a short edge >= 608 never pads.
    """

    divisor: int = 32
    fill: tuple[int, int, int] = (124, 116, 104)

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        h, w = data.size
        ph, pw = -h % self.divisor, -w % self.divisor
        if ph == 0 and pw == 0:
            return data

        def pad_frame(f: np.ndarray) -> np.ndarray:
            out = np.empty((h + ph, w + pw, 3), dtype=f.dtype)
            out[:] = np.asarray(self.fill, dtype=f.dtype)
            out[:h, :w] = f
            return out

        return data.map(pad_frame, lambda lab: np.pad(lab, ((0, ph), (0, pw))))


def vipseg_train_transform(short_edges: Sequence[int] = MIN_SIZES, max_size: int = MAX_SIZE, crop: int = CROP,
                           flip_prob: float = 0.5) -> Compose:
    """The official clip augmentation: resize shortest edge (choice) -> random crop -> flip -> pad to 32 ->
    RGB minus PIXEL_MEAN (std 1)."""
    return Compose(
        (ResizeShortestEdge(tuple(int(s) for s in short_edges), int(max_size)),
         RandomCrop((crop, crop), cat_max_ratio=1.0),
         RandomFlip(flip_prob),
         PadToDivisor(32)),
        to_tensor=ToTensor(PIXEL_MEAN, PIXEL_STD),
    )


class PanopticVideo:
    """A VIPSeg reader video whose ``load_label`` gives library panoptic ids (int32 [H, W]) instead of
    categories, so :class:`vidseg.data.dataset.ClipDataset` and the transforms carry instances along."""

    has_labels = True

    def __init__(self, video: Any) -> None:
        self.video = video
        self.name = video.name

    def __len__(self) -> int:
        return len(self.video)

    def load_frame(self, index: int) -> np.ndarray:
        return self.video.load_frame(index)

    def load_label(self, index: int) -> np.ndarray:
        return self.video.load_panoptic_ids(index)


def vipseg_videos(root: str | os.PathLike, split: str | None) -> list[Any]:
    """The videos of a VIPSeg root in either layout (raw release or 720P COCO-style)."""
    layout = detect_layout(root)
    if layout == "vipseg-raw":
        return list(VIPSegRawDataset(root, split).videos)
    if layout == "vipseg-720p":
        return list(VIPSeg720Dataset(root, split).videos)
    raise DataError(root, f"not a VIPSeg root (detected layout: {layout})")


def vipseg_train_dataset(root: str | os.PathLike, split: str | None = "train", *, clip_length: int = 3,
                         transform: Compose | None = None, repeat: int = 1, seed: int = 0) -> ClipDataset:
    """Training clips of a VIPSeg split with panoptic-id labels (see the module docstring).

    Args:
        root: VIPSeg root (raw release or ``VIPSeg_720P``).
        split: ``train``, ``val`` or None (all videos).
        clip_length: consecutive frames per clip (``TRAIN_CLIPNUM`` 3).
        transform: default :func:`vipseg_train_transform`.
        repeat: times each video appears per epoch.
        seed: base seed of the per-item generators.
    """
    videos = [PanopticVideo(v) for v in vipseg_videos(root, split)]
    return ClipDataset(videos, ConsecutiveSampler(clip_length), transform or vipseg_train_transform(),
                       train=True, repeat=repeat, seed=seed)
