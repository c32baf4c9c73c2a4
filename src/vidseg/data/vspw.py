"""VSPW reader (and VSPW-480p, which has the same layout).

Layout (metrics spec §1.1)::

    ROOT/train.txt val.txt test.txt          # one video folder name per line
    ROOT/data/<video>/origin/00000001.jpg    # frames
    ROOT/data/<video>/mask/00000001.png      # single-channel 8-bit ("L") masks, same stems

Raw mask values: 0 = "others", 255 = "void", 1..124 = classes. Inside the library classes are 0..123 and
255 is ignored: ``label = raw - 1`` with 0 and 255 mapped to 255 (the official recipe).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.categories import IGNORE_LABEL, NUM_VSPW_CLASSES
from vidseg.data.layout import (
    VideoDataset,
    VideoRecord,
    check_same_size,
    ensure_complete,
    list_dirs,
    raise_first,
    scan_video,
    split_videos,
)
from vidseg.errors import DataError
from vidseg.fileio import read_image, write_mask_png

SPLITS = ("train", "val", "test")
MASK_MODE = "L"


def vspw_raw_to_label(raw: np.ndarray) -> np.ndarray:
    """Official shift of raw VSPW mask values to library classes.

    Args:
        raw: integer array [H, W] with values 0..124 or 255.

    Returns:
        uint8 array [H, W]: raw 1..124 -> 0..123, raw 0 and 255 -> 255 (ignore).
    """
    raw = np.asarray(raw)
    label = raw.astype(np.int16) - 1
    label[(raw == 0) | (raw == 255)] = IGNORE_LABEL
    return label.astype(np.uint8)


def vspw_label_to_raw(label: np.ndarray) -> np.ndarray:
    """Inverse shift for writing official-format masks: classes 0..123 -> 1..124, 255 stays 255 (void).

    Raw "others" (0) becomes 255 after a read, so ``raw -> label -> raw`` is the identity only for masks
    without raw 0; use :meth:`VSPWVideo.load_raw_mask` for byte-exact copies.
    """
    label = np.asarray(label)
    bad = (label >= NUM_VSPW_CLASSES) & (label != IGNORE_LABEL)
    if bad.any():
        raise ValueError(f"labels must be 0..{NUM_VSPW_CLASSES - 1} or 255, got {int(label[bad].max())}")
    raw = label.astype(np.int16) + 1
    raw[label == IGNORE_LABEL] = 255
    return raw.astype(np.uint8)


def validate_raw_mask(path: Path, raw: np.ndarray) -> None:
    """DataError if a raw mask holds values other than 0..124 and 255."""
    bad = (raw > NUM_VSPW_CLASSES) & (raw != 255)
    if bad.any():
        values = sorted({int(v) for v in np.unique(raw[bad])})[:5]
        raise DataError(path, f"label values {values} outside the VSPW range 0..{NUM_VSPW_CLASSES} and 255")


def read_raw_mask(path: Path) -> np.ndarray:
    """Read and validate a raw VSPW mask: uint8 [H, W], mode "L" required."""
    raw = read_image(path, MASK_MODE)
    validate_raw_mask(path, raw)
    return raw


def write_raw_mask(path: str | os.PathLike, raw: np.ndarray) -> None:
    """Write a raw VSPW mask (uint8 [H, W]) as an "L" PNG, atomically."""
    write_mask_png(path, np.asarray(raw, dtype=np.uint8))


@dataclass(frozen=True)
class VSPWVideo(VideoRecord):
    """One VSPW video; ``load_label(i)`` gives classes 0..123 with 255 ignore, uint8 [H, W]."""

    def load_raw_mask(self, index: int) -> np.ndarray:
        """The mask of frame ``index`` as stored (0 others, 1..124 classes, 255 void), uint8 [H, W]."""
        return read_raw_mask(self.mask_path(index))

    def load_label(self, index: int) -> np.ndarray:
        """Semantic label of frame ``index``: uint8 [H, W], classes 0..123, 255 ignore."""
        return vspw_raw_to_label(self.load_raw_mask(index))

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame uint8 [H, W, 3], label uint8 [H, W]); DataError if their sizes differ."""
        frame = self.load_frame(index)
        label = self.load_label(index)
        check_same_size(self.frames[index], frame.shape[:2], self.mask_path(index), label.shape)
        return frame, label


def scan_vspw(root: str | os.PathLike, split: str | None = None) -> tuple[list[VSPWVideo], list[DataError]]:
    """Scan a VSPW root without decoding images.

    Args:
        root: the folder holding ``data/`` and the split files.
        split: ``"train"``, ``"val"``, ``"test"`` (videos of that split file) or None (every video folder).

    Returns:
        (videos, structural problems).
    """
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        return [], [DataError(root, "not a VSPW root: missing data/ folder")]
    available = list_dirs(data)
    problems: list[DataError] = []
    if split is None:
        names = available
    else:
        if split not in SPLITS:
            raise DataError(root, f"unknown VSPW split '{split}' (expected one of {', '.join(SPLITS)})")
        names, problems = split_videos(root / f"{split}.txt", available)
    videos = []
    for name in names:
        rec, probs = scan_video(name, data / name / "origin", data / name / "mask")
        problems += probs
        if rec is not None:
            videos.append(VSPWVideo(rec.name, rec.frames, rec.masks))
    return videos, problems


class VSPWDataset(VideoDataset):
    """The videos of a VSPW (or VSPW-480p) root, validated on construction.

    Args:
        root: dataset root (holds ``data/`` and ``train.txt``/``val.txt``/``test.txt``).
        split: a split name, or None for every video folder.

    Raises:
        DataError: missing folders, an empty video, a frame without a mask, a split file naming a missing
            video. Image contents are checked when loaded (or all at once by ``vidseg info --check``).
    """

    num_classes = NUM_VSPW_CLASSES

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        ensure_complete(self.root)
        self.videos, problems = scan_vspw(self.root, split)
        raise_first(problems)
        if not self.videos:
            raise DataError(self.root, "no videos found" + (f" in split '{split}'" if split else ""))
