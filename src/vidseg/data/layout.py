"""Shared pieces of the dataset readers: the per-video record, file listing, split files, layout detection.

Every reader scans its root into :class:`VideoRecord` objects (name, frame paths, mask paths) without
decoding any image; frames and labels are decoded lazily by ``load_frame(i)`` / ``load_label(i)``.
Structural problems found while scanning (missing folders, a frame without a mask, a split file naming a
missing video) are collected as :class:`~vidseg.errors.DataError` objects: readers raise the first one,
``vidseg info --check`` lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.errors import DataError
from vidseg.fileio import oriented_size, read_image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")

# Written by the converters at the start and removed at the end: a root holding it is an interrupted
# conversion and must never be read as a complete dataset.
INCOMPLETE_MARKER = ".vidseg-incomplete"

LAYOUTS = ("vspw", "vspw-480p", "vipseg-raw", "vipseg-720p", "davis", "video", "frames")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset: its frames and, where annotated, one mask per frame.

    Attributes:
        name: the video (sequence) name, i.e. its folder name.
        frames: frame image paths in temporal order.
        masks: per frame, the ground-truth mask path, or None where the frame has no mask (test splits).
    """

    name: str
    frames: tuple[Path, ...]
    masks: tuple[Path | None, ...]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def frame_ids(self) -> tuple[str, ...]:
        """File stems of the frames (e.g. ``"00000001"``)."""
        return tuple(p.stem for p in self.frames)

    @property
    def has_labels(self) -> bool:
        """True when at least one frame has a mask."""
        return any(m is not None for m in self.masks)

    def load_frame(self, index: int) -> np.ndarray:
        """Decode frame ``index`` as uint8 RGB [H, W, 3]."""
        return read_image(self.frames[index], "RGB")

    def mask_path(self, index: int) -> Path:
        """The mask path of frame ``index``; DataError if that frame has none."""
        path = self.masks[index]
        if path is None:
            raise DataError(self.frames[index], "frame has no ground-truth mask")
        return path


def list_files(folder: Path, exts: Sequence[str]) -> list[Path]:
    """Files of ``folder`` with one of the extensions (case-insensitive), sorted by name, hidden files skipped."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts)


def list_dirs(folder: Path) -> list[str]:
    """Names of the sub-folders of ``folder``, sorted, hidden ones skipped."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_split_file(path: Path) -> list[str]:
    """Video names listed one per line in a split file (blank lines ignored; a UTF-8 BOM is stripped).

    The one reader of split files (datasets, ``info --check`` and the evaluators).

    Raises:
        DataError: missing or unreadable file, or a video listed twice (both line numbers named).
    """
    if not path.is_file():
        raise DataError(path, "split file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # Windows editors prepend a BOM to the first name
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable split file ({exc})") from None
    names: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if name in first_line:
            raise DataError(path, f"video {name} is listed twice (lines {first_line[name]} and {number})")
        first_line[name] = number
        names.append(name)
    return names


def split_videos(split_path: Path, available: Iterable[str]) -> tuple[list[str], list[DataError]]:
    """Names of a split file, with one problem per name that has no video folder."""
    names = read_split_file(split_path)
    have = set(available)
    problems = [DataError(split_path, f"names video '{n}' which does not exist") for n in names if n not in have]
    return [n for n in names if n in have], problems


def pair_frames_masks(frames: list[Path], masks: list[Path], frame_dir: Path, mask_dir: Path,
                      require_all: bool) -> tuple[list[Path | None], list[DataError]]:
    """Match masks to frames by file stem.

    Args:
        frames: frame paths in order.
        masks: mask paths.
        require_all: report a frame without a mask as a problem (otherwise it is simply unlabelled).

    Returns:
        (per frame the mask path or None, problems: frames without masks, masks without frames).
    """
    by_stem = {m.stem: m for m in masks}
    frame_stems = {f.stem for f in frames}
    paired: list[Path | None] = [by_stem.get(f.stem) for f in frames]
    problems = []
    if require_all:
        problems += [DataError(f, f"missing mask {mask_dir / (f.stem + '.png')}")
                     for f, m in zip(frames, paired, strict=True) if m is None]
    problems += [DataError(m, f"mask has no frame in {frame_dir}") for m in masks if m.stem not in frame_stems]
    return paired, problems


def scan_video(name: str, frame_dir: Path, mask_dir: Path | None, frame_exts: Sequence[str] = IMAGE_EXTS,
               ) -> tuple[VideoRecord | None, list[DataError]]:
    """Scan one video folder pair into a record.

    A missing or empty frame folder is a problem (and gives no record). A missing mask folder means an
    unlabelled video (test split). When the mask folder exists every frame must have a mask.
    """
    if not frame_dir.is_dir():
        return None, [DataError(frame_dir, "video folder not found")]
    frames = list_files(frame_dir, frame_exts)
    if not frames:
        return None, [DataError(frame_dir, "empty video folder: no frames")]
    if mask_dir is None or not mask_dir.is_dir():
        return VideoRecord(name, tuple(frames), (None,) * len(frames)), []
    masks = list_files(mask_dir, (".png",))
    paired, problems = pair_frames_masks(frames, masks, frame_dir, mask_dir, require_all=True)
    return VideoRecord(name, tuple(frames), tuple(paired)), problems


def ensure_complete(root: Path) -> None:
    """DataError if ``root`` is the output of an interrupted conversion."""
    if (root / INCOMPLETE_MARKER).exists():
        raise DataError(root, "incomplete conversion output (interrupted?); run the same vidseg convert "
                        "command again to finish it")


def raise_first(problems: list[DataError]) -> None:
    """Raise the first problem, mentioning how many more were found."""
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems; run 'vidseg info --check')" if len(problems) > 1 else ""
        raise DataError(first.path, first.problem + more)


def image_size(path: Path, oriented: bool = False) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding; DataError if unreadable.

    With ``oriented`` the size is the frame's after its EXIF orientation (as :func:`vidseg.fileio.read_image`
    returns RGB frames)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            raise DataError(path, "zero-byte image file")
        with Image.open(path) as img:
            return oriented_size(img) if oriented else (img.height, img.width)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(path, f"unreadable image ({exc})") from None


def check_same_size(frame_path: Path, frame_hw: tuple[int, int], mask_path: Path, mask_hw: tuple[int, int]) -> None:
    """DataError naming the mask if its size differs from the frame's."""
    if tuple(frame_hw) != tuple(mask_hw):
        raise DataError(mask_path, f"mask size {mask_hw[0]}x{mask_hw[1]} differs from frame {frame_path.name} "
                        f"size {frame_hw[0]}x{frame_hw[1]} (HxW)")


class VideoDataset(Sequence):
    """Base of the dataset readers: a sequence of :class:`VideoRecord`, indexable by position or name."""

    videos: list

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            for v in self.videos:
                if v.name == key:
                    return v
            raise KeyError(key)
        return self.videos[key]

    def __iter__(self) -> Iterator:
        return iter(self.videos)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.videos]

    @property
    def num_frames(self) -> int:
        return sum(len(v) for v in self.videos)


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTS for p in folder.iterdir() if p.is_file())


def _vspw_flavour(root: Path) -> str:
    """``vspw-480p`` when the first frame found is 480 pixels high, else ``vspw``."""
    for video in list_dirs(root / "data"):
        frames = list_files(root / "data" / video / "origin", IMAGE_EXTS)
        if frames:
            try:
                return "vspw-480p" if image_size(frames[0])[0] == 480 else "vspw"
            except DataError:
                return "vspw"
    return "vspw"


def detect_layout(path: str | os.PathLike) -> str:
    """Which layout ``path`` holds: one of :data:`LAYOUTS`.

    Raises:
        DataError: the path does not exist or matches no known layout.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTS:
            return "video"
        raise DataError(path, f"not a video file (expected one of {', '.join(VIDEO_EXTS)}) nor a dataset folder")
    if not path.is_dir():
        raise DataError(path, "no such file or folder")
    if (path / "data").is_dir():
        return _vspw_flavour(path)
    if (path / "imgs").is_dir() and (path / "panomasks").is_dir():
        return "vipseg-raw"
    if (path / "images").is_dir() and ((path / "panomasksRGB").is_dir()
                                       or any(path.glob("panoptic_gt_VIPSeg*.json"))):
        return "vipseg-720p"
    if (path / "JPEGImages").is_dir() and (path / "Annotations").is_dir():
        return "davis"
    if (path / "imgs").is_dir():
        return "vipseg-raw"
    if _has_images(path):
        return "frames"
    raise DataError(path, "unrecognised layout: expected VSPW (data/), VIPSeg (imgs/+panomasks/ or "
                    "images/+panomasksRGB/), DAVIS (JPEGImages/+Annotations/), a video file or a folder of frames")
