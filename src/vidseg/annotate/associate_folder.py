"""``associate_folder(in_dir, out_dir)``: give per-frame instance annotations video-level track ids.

Input and output use the raw VIPSeg panomask layout (``<root>/<video>/<frame>.png``, 16-bit greyscale: 0 void,
stuff = category + 1, thing = (category + 1) * 100 + instance; :mod:`vidseg.data.vipseg`), where the instance
numbers of the input may be unrelated from frame to frame (each frame annotated on its own). Each video's frames,
in name order, go through :class:`vidseg.annotate.association.InstanceAssociator` (IoU between instances of the
same category in consecutive frames, Hungarian assignment; VIPSeg §3.4.1), and the output instance of a thing is
its track's number within its category (0, 1, ... in order of first appearance), so the same object keeps the
same value in every frame. Stuff and void pass through unchanged. ``in_dir`` may also be one video's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.annotate.association import InstanceAssociator
from vidseg.data.vipseg import (
    panoptic_to_vipseg_raw,
    read_raw_panomask,
    vipseg_raw_to_panoptic,
    write_raw_panomask,
)
from vidseg.errors import DataError

MAX_INSTANCES = 100  # the raw layout stores instance numbers 0..99 per category


@dataclass
class AssociationSummary:
    """What :func:`associate_folder` did: videos, frames, and tracks per video."""

    videos: int
    frames: int
    tracks: dict[str, int]


class CategoryTrackNumbers:
    """Video track id -> instance number within its category (0, 1, ... in order of first appearance)."""

    def __init__(self) -> None:
        self.numbers: dict[int, int] = {}
        self.per_category: dict[int, int] = {}

    def number(self, track: int, category: int, where: Path) -> int:
        if track not in self.numbers:
            n = self.per_category.get(category, 0)
            if n >= MAX_INSTANCES:
                raise DataError(where, f"category {category} has more than {MAX_INSTANCES} tracks, which the raw "
                                       "VIPSeg layout cannot store")
            self.per_category[category] = n + 1
            self.numbers[track] = n
        return self.numbers[track]


def associate_frame(raw: np.ndarray, associator: InstanceAssociator, numbers: CategoryTrackNumbers,
                    where: Path) -> np.ndarray:
    """One raw panomask [H, W] with per-frame instances -> raw panomask uint16 with track instances."""
    category, instance = vipseg_raw_to_panoptic(raw, where)
    category = category.astype(np.int64)
    key = np.where(instance > 0, category * 1000 + instance, 0)
    uniq, inverse = np.unique(key, return_inverse=True)
    local = inverse.reshape(key.shape) + (0 if uniq[0] == 0 else 1)
    cats = {i + (0 if uniq[0] == 0 else 1): int(u) // 1000 for i, u in enumerate(uniq) if u != 0}
    tracks = associator.update(local, cats)
    out_instance = np.zeros_like(instance)
    for track in np.unique(tracks):
        if track:
            where_track = tracks == track
            cat = int(category[where_track][0])
            out_instance[where_track] = numbers.number(int(track), cat, where) + 1
    return panoptic_to_vipseg_raw(category.astype(np.uint8), out_instance)


def _video_dirs(in_dir: Path) -> list[Path]:
    if any(p.suffix.lower() == ".png" for p in in_dir.iterdir() if p.is_file()):
        return [in_dir]
    videos = sorted(p for p in in_dir.iterdir() if p.is_dir())
    if not videos:
        raise DataError(in_dir, "holds no PNG masks and no video folders of PNG masks")
    return videos


def associate_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike, *, min_iou: float = 0.0
                     ) -> AssociationSummary:
    """Write track-consistent raw panomasks of every video of ``in_dir`` to ``out_dir/<video>/`` (module docstring).

    Args:
        in_dir: raw panomask root (``<video>/<frame>.png``) or one video's folder.
        out_dir: output root (frames written atomically, same names).
        min_iou: an instance continues a track only with IoU above this.

    Raises:
        DataError: missing folder, no masks, a mask that is not a raw panomask, frames of different sizes.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise DataError(in_dir, "input folder not found")
    if out_dir.resolve() == in_dir.resolve():
        raise DataError(out_dir, "output folder is the input folder; choose another one")
    tracks: dict[str, int] = {}
    frames = 0
    for video in _video_dirs(in_dir):
        associator, numbers, shape = InstanceAssociator(min_iou=min_iou), CategoryTrackNumbers(), None
        for path in sorted(video.glob("*.png")):
            raw = read_raw_panomask(path)
            if shape is not None and raw.shape != shape:
                raise DataError(path, f"mask size {raw.shape} differs from the video's {shape}")
            shape = raw.shape
            write_raw_panomask(out_dir / video.name / path.name, associate_frame(raw, associator, numbers, path))
            frames += 1
        tracks[video.name] = len(numbers.numbers)
    return AssociationSummary(videos=len(tracks), frames=frames, tracks=tracks)
