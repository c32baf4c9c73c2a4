"""DAVIS readers: DAVIS 2017 (multi-object, indexed PNG) and DAVIS 2016 (single object).

DAVIS 2017 layout (metrics spec §3.1)::

    ROOT/JPEGImages/480p/<seq>/00000.jpg
    ROOT/Annotations/480p/<seq>/00000.png    # palette ("P") PNG: 0 background, 1..N objects, 255 void
    ROOT/ImageSets/2017/{train,val}.txt      # ImageSets/2016/{train,val}.txt for the 2016 subset

DAVIS 2016 is read either from its own package (binary greyscale masks, 0 / 255, and
``ImageSets/480p/{train,val,trainval}.txt`` listing ``/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/...``
pairs) or from the 2017 package with all objects merged into object 1 (``annotation != 0``; void 255 is kept).

Labels are object ids, uint8 [H, W]: 0 background, 1..N objects, 255 void. Test-dev packages hold only the
first frame's annotation; such videos have masks for the annotated frames only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.categories import davis_palette
from vidseg.data.layout import (
    VideoDataset,
    VideoRecord,
    check_same_size,
    ensure_complete,
    list_dirs,
    list_files,
    pair_frames_masks,
    raise_first,
    read_split_file,
)
from vidseg.errors import DataError
from vidseg.fileio import read_image, write_mask_png

YEARS = (2016, 2017)
VOID = 255


def read_davis_mask(path: Path, single_object: bool) -> np.ndarray:
    """Read a DAVIS annotation as object ids uint8 [H, W].

    Palette ("P") masks are the 2017 format; with ``single_object`` their objects merge into 1. Greyscale
    ("L"/"1") masks are the 2016 binary format and are accepted only with ``single_object``.
    """
    from PIL import Image

    arr = read_image(path)
    with Image.open(path) as img:
        mode = img.mode
    if mode == "P":
        ids = arr.astype(np.uint8)
        if single_object:
            ids = np.where(ids == VOID, VOID, (ids != 0).astype(np.uint8)).astype(np.uint8)
        return ids
    if single_object and mode in ("L", "1"):
        return (arr != 0).astype(np.uint8)
    expected = "indexed (P) or binary greyscale (L)" if single_object else "indexed (P)"
    raise DataError(path, f"image mode is {mode}, expected {expected}")


def write_davis_mask(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write object ids uint8 [H, W] as a DAVIS palette PNG, atomically."""
    write_mask_png(path, np.asarray(ids, dtype=np.uint8), davis_palette())


@dataclass(frozen=True)
class DAVISVideo(VideoRecord):
    """One DAVIS sequence; ``single_object`` merges the objects (DAVIS 2016 evaluation)."""

    single_object: bool = False

    def load_label(self, index: int) -> np.ndarray:
        """Object ids of frame ``index``: uint8 [H, W], 0 background, 1..N objects, 255 void."""
        return read_davis_mask(self.mask_path(index), self.single_object)

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame uint8 [H, W, 3], object ids uint8 [H, W]); DataError if sizes differ."""
        frame = self.load_frame(index)
        label = self.load_label(index)
        check_same_size(self.frames[index], frame.shape[:2], self.mask_path(index), label.shape)
        return frame, label

    def object_ids(self) -> list[int]:
        """Object ids present in the first annotated frame (the objects to track)."""
        first = next((i for i, m in enumerate(self.masks) if m is not None), None)
        if first is None:
            raise DataError(self.frames[0].parent, "sequence has no annotation")
        ids = np.unique(self.load_label(first))
        return [int(v) for v in ids if v not in (0, VOID)]


def masks_are_binary(videos: list[DAVISVideo]) -> bool:
    """True when the first readable annotation is greyscale: a DAVIS 2016 package (single object)."""
    from PIL import Image

    for video in videos:
        for mask in video.masks:
            if mask is None:
                continue
            try:
                with Image.open(mask) as img:
                    return img.mode in ("L", "1")
            except OSError:
                continue
    return False


def _names_from_imageset(path: Path) -> list[str]:
    """Sequence names of an ImageSets file: plain names (2017) or frame path pairs (2016 package)."""
    names: list[str] = []
    for line in read_split_file(path):
        token = line.split()[0]
        name = token.strip("/").split("/")[-2] if "/" in token else token
        if name not in names:
            names.append(name)
    return names


def find_imageset(root: Path, year: int, split: str, resolution: str) -> Path:
    """The split file: ``ImageSets/<year>/<split>.txt``, else the 2016 package's ``ImageSets/<res>/<split>.txt``."""
    candidates = [root / "ImageSets" / str(year) / f"{split}.txt"]
    if year == 2016:
        candidates.append(root / "ImageSets" / resolution / f"{split}.txt")
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(candidates[0], "split file not found")


def _scan_sequence(root: Path, name: str, resolution: str, single_object: bool,
                   ) -> tuple[DAVISVideo | None, list[DataError]]:
    frame_dir = root / "JPEGImages" / resolution / name
    mask_dir = root / "Annotations" / resolution / name
    if not frame_dir.is_dir():
        return None, [DataError(frame_dir, "video folder not found")]
    frames = list_files(frame_dir, (".jpg", ".jpeg", ".png"))
    if not frames:
        return None, [DataError(frame_dir, "empty video folder: no frames")]
    masks = list_files(mask_dir, (".png",))
    # test-dev packages annotate only the first frame; otherwise every frame needs a mask
    first_only = len(masks) == 1 and masks[0].stem == frames[0].stem
    paired, problems = pair_frames_masks(frames, masks, frame_dir, mask_dir, require_all=bool(masks) and not first_only)
    return DAVISVideo(name, tuple(frames), tuple(paired), single_object), problems


def scan_davis(root: str | os.PathLike, year: int = 2017, split: str | None = "val", resolution: str = "480p",
               single_object: bool | None = None) -> tuple[list[DAVISVideo], list[DataError]]:
    """Scan a DAVIS root without decoding images.

    Args:
        root: folder holding ``JPEGImages/``, ``Annotations/`` and ``ImageSets/``.
        year: 2017 or 2016 (selects the split files; 2016 merges objects unless ``single_object`` says otherwise).
        split: ``"train"``, ``"val"``, ... (a file of ``ImageSets``) or None for every sequence folder.
        resolution: ``"480p"`` or ``"Full-Resolution"`` / ``"1080p"``.
        single_object: merge all objects into object 1; defaults to ``year == 2016``.
    """
    root = Path(root)
    if year not in YEARS:
        raise DataError(root, f"unknown DAVIS year {year} (expected 2016 or 2017)")
    single = (year == 2016) if single_object is None else single_object
    frame_root = root / "JPEGImages" / resolution
    if not frame_root.is_dir():
        return [], [DataError(frame_root, "not a DAVIS root: missing folder")]
    available = list_dirs(frame_root)
    problems: list[DataError] = []
    if split is None:
        names = available
    else:
        split_path = find_imageset(root, year, split, resolution)
        listed = _names_from_imageset(split_path)
        problems += [DataError(split_path, f"names video '{n}' which does not exist")
                     for n in listed if n not in set(available)]
        names = [n for n in listed if n in set(available)]
    videos = []
    for name in names:
        video, probs = _scan_sequence(root, name, resolution, single)
        problems += probs
        if video is not None:
            videos.append(video)
    return videos, problems


class DAVISDataset(VideoDataset):
    """The sequences of a DAVIS root, validated on construction.

    Args:
        root: dataset root.
        year: 2017 (multi-object) or 2016 (single object).
        split: split name in ``ImageSets`` or None for every sequence folder.
        resolution: sub-folder of ``JPEGImages``/``Annotations``.
        single_object: merge objects (defaults to ``year == 2016``).
    """

    def __init__(self, root: str | os.PathLike, year: int = 2017, split: str | None = "val",
                 resolution: str = "480p", single_object: bool | None = None) -> None:
        self.root = Path(root)
        self.year = year
        self.split = split
        ensure_complete(self.root)
        self.videos, problems = scan_davis(self.root, year, split, resolution, single_object)
        raise_first(problems)
        if not self.videos:
            raise DataError(self.root, "no sequences found" + (f" in split '{split}'" if split else ""))
