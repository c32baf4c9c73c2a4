"""VIPSeg readers: the raw release and the 720P COCO-style video panoptic layout.

Raw release (metrics spec §2.1)::

    ROOT/train.txt val.txt test.txt
    ROOT/imgs/<video>/00000001.jpg
    ROOT/panomasks/<video>/00000001.png     # 16-bit: 0 void, stuff = raw category (1..124),
                                            # thing = raw_category * 100 + instance (instance from 0)

The official decoding rule (``create_panoptic_video_labels.py``) is: values below 125 are a category,
otherwise ``category = value // 100``; the JSON (and library) category is ``raw_category - 1`` (0..123).

720P COCO-style layout::

    ROOT/images/<video>/00000001.jpg
    ROOT/panomasksRGB/<video>/00000001.png  # RGB ids, id = R + 256 G + 65536 B, 0 void
    ROOT/panoptic_gt_VIPSeg.json            # videos / annotations (segments_info) / categories
    ROOT/panoptic_gt_VIPSeg_{train,val}.json

Library convention (DESIGN.md): category 0..123 with 255 void, instance 0 for stuff and 1.. for things;
panoptic id ``(category + 1) * label_divisor + instance``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseg.categories import IGNORE_LABEL, NUM_VSPW_CLASSES, vipseg_categories
from vidseg.data.layout import (
    VideoDataset,
    VideoRecord,
    check_same_size,
    ensure_complete,
    list_dirs,
    raise_first,
    read_split_file,
    scan_video,
    split_videos,
)
from vidseg.errors import DataError
from vidseg.fileio import read_image, write_mask_png
from vidseg.structures import DEFAULT_LABEL_DIVISOR, encode_panoptic, rgb2id

SPLITS = ("train", "val", "test")
STUFF_LIMIT = 125  # official rule: raw values below this are a category id, above it category*100+instance
JSON_NAME = "panoptic_gt_VIPSeg.json"


def _is_thing_table() -> np.ndarray:
    return np.array([c.isthing for c in vipseg_categories()], dtype=bool)


# ----------------------------------------------------------------------------------------------------------
# raw release
# ----------------------------------------------------------------------------------------------------------

def raw_category(raw: np.ndarray) -> np.ndarray:
    """0-based category of raw panomask values by the official rule (-1 for void), int64 like ``raw``."""
    raw = np.asarray(raw, dtype=np.int64)
    cat = np.where(raw < STUFF_LIMIT, raw, raw // 100) - 1
    return np.where(raw == 0, -1, cat)


def vipseg_raw_to_panoptic(raw: np.ndarray, path: str | os.PathLike = "<array>") -> tuple[np.ndarray, np.ndarray]:
    """Decode a raw VIPSeg panomask into library (category, instance).

    Args:
        raw: integer array [H, W] (the 16-bit PNG values).
        path: file named in errors.

    Returns:
        (category uint8 [H, W]: 0..123, 255 void; instance int32 [H, W]: 0 for stuff and void,
        raw instance + 1 for things).

    Raises:
        DataError: a value decodes to a category outside 0..123.
    """
    raw = np.asarray(raw, dtype=np.int64)
    cat = raw_category(raw)
    bad = cat >= NUM_VSPW_CLASSES
    if bad.any():
        values = sorted({int(v) for v in np.unique(raw[bad])})[:5]
        raise DataError(path, f"panomask values {values} decode to categories outside 1..{NUM_VSPW_CLASSES}")
    void = cat < 0
    safe_cat = np.where(void, 0, cat)
    thing = _is_thing_table()[safe_cat] & ~void
    instance = np.where(thing & (raw >= STUFF_LIMIT), raw % 100 + 1, 0)
    category = np.where(void, IGNORE_LABEL, cat)
    return category.astype(np.uint8), instance.astype(np.int32)


def panoptic_to_vipseg_raw(category: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Encode library (category, instance) as raw VIPSeg values (inverse of :func:`vipseg_raw_to_panoptic`).

    Returns:
        uint16 array [H, W]: void 0, stuff ``category + 1``, thing ``(category + 1) * 100 + instance - 1``
        (a thing without instance, instance 0, is stored as ``category + 1``).
    """
    category = np.asarray(category, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    if instance.size and instance.max(initial=0) > 100:
        raise ValueError("VIPSeg raw masks hold at most 100 instances per category")
    raw = np.where(instance > 0, (category + 1) * 100 + instance - 1, category + 1)
    raw[category == IGNORE_LABEL] = 0
    return raw.astype(np.uint16)


def read_raw_panomask(path: Path) -> np.ndarray:
    """Read a raw panomask (16-bit or 8-bit greyscale PNG) as int64 [H, W]; DataError on a wrong mode."""
    arr = read_image(path)
    if arr.ndim != 2:
        raise DataError(path, f"panomask has {arr.shape[-1]} channels, expected a single-channel 16-bit PNG")
    from PIL import Image

    with Image.open(path) as img:
        mode = img.mode
    if mode not in ("I;16", "I", "L", "I;16B"):
        raise DataError(path, f"image mode is {mode}, expected a 16-bit greyscale panomask")
    return arr.astype(np.int64)


def write_raw_panomask(path: str | os.PathLike, raw: np.ndarray) -> None:
    """Write a raw VIPSeg panomask as a 16-bit greyscale PNG, atomically."""
    write_mask_png(path, np.asarray(raw, dtype=np.uint16))


@dataclass(frozen=True)
class VIPSegRawVideo(VideoRecord):
    """One video of the raw release."""

    def load_raw_mask(self, index: int) -> np.ndarray:
        """The panomask of frame ``index`` as stored, int64 [H, W]."""
        return read_raw_panomask(self.mask_path(index))

    def load_panoptic(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(category uint8 [H, W] with 255 void, instance int32 [H, W]) of frame ``index``."""
        path = self.mask_path(index)
        return vipseg_raw_to_panoptic(read_raw_panomask(path), path)

    def load_label(self, index: int) -> np.ndarray:
        """Semantic label uint8 [H, W]: categories 0..123, 255 void."""
        return self.load_panoptic(index)[0]

    def load_panoptic_ids(self, index: int, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> np.ndarray:
        """Library panoptic ids int32 [H, W] (0 void)."""
        return encode_panoptic(*self.load_panoptic(index), label_divisor=label_divisor)


def scan_vipseg_raw(root: str | os.PathLike, split: str | None = None,
                    ) -> tuple[list[VIPSegRawVideo], list[DataError]]:
    """Scan a raw VIPSeg root (``imgs/``, ``panomasks/``, split files) without decoding images."""
    root = Path(root)
    if not (root / "imgs").is_dir():
        return [], [DataError(root, "not a VIPSeg root: missing imgs/ folder")]
    available = list_dirs(root / "imgs")
    problems: list[DataError] = []
    if split is None:
        names = available
    else:
        if split not in SPLITS:
            raise DataError(root, f"unknown VIPSeg split '{split}' (expected one of {', '.join(SPLITS)})")
        names, problems = split_videos(root / f"{split}.txt", available)
    videos = []
    for name in names:
        rec, probs = scan_video(name, root / "imgs" / name, root / "panomasks" / name)
        problems += probs
        if rec is not None:
            videos.append(VIPSegRawVideo(rec.name, rec.frames, rec.masks))
    problems += [DataError(root / "panomasks" / n, "mask folder has no video in imgs/")
                 for n in list_dirs(root / "panomasks") if n not in set(available)]
    return videos, problems


class VIPSegRawDataset(VideoDataset):
    """The videos of a raw VIPSeg release, validated on construction (see :class:`VSPWDataset`)."""

    num_classes = NUM_VSPW_CLASSES

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        ensure_complete(self.root)
        self.videos, problems = scan_vipseg_raw(self.root, split)
        raise_first(problems)
        if not self.videos:
            raise DataError(self.root, "no videos found" + (f" in split '{split}'" if split else ""))


# ----------------------------------------------------------------------------------------------------------
# 720P COCO-style layout
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VIPSeg720Video(VideoRecord):
    """One video of the 720P COCO-style layout.

    Attributes:
        segments: per frame, the JSON ``segments_info`` as a mapping segment id -> category id.
        areas: per frame, segment id -> area stated in the JSON (None where the JSON has none).
        instance_of: segment id -> library instance number (things: 1, 2, ... in order of first appearance
            in the video's JSON per category; stuff: 0). Stable across the frames of the video.
        json_path: the JSON file the segments come from (named in errors).
    """

    segments: tuple[dict[int, int], ...] = ()
    areas: tuple[dict[int, int | None], ...] = ()
    instance_of: dict[int, int] = field(default_factory=dict)
    json_path: Path = Path()

    def load_rgb_ids(self, index: int) -> np.ndarray:
        """Segment ids of frame ``index`` decoded from the RGB PNG, int64 [H, W] (0 void)."""
        path = self.mask_path(index)
        arr = read_image(path)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise DataError(path, "panomasksRGB PNG must be RGB (id = R + 256 G + 65536 B)")
        return rgb2id(arr)

    def check_segments(self, index: int, png_ids: set[int]) -> None:
        """DataError if the ids present in the PNG and the JSON segments of frame ``index`` differ (either way)."""
        in_png = set(png_ids) - {0}
        in_json = set(self.segments[index])
        if in_png - in_json:
            raise DataError(self.mask_path(index), f"segment ids {sorted(in_png - in_json)[:5]} in the PNG are "
                            f"absent from {self.json_path.name}")
        if in_json - in_png:
            raise DataError(self.mask_path(index), f"segment ids {sorted(in_json - in_png)[:5]} of "
                            f"{self.json_path.name} are absent from the PNG")

    def load_panoptic(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(category uint8 [H, W] with 255 void, instance int32 [H, W]) of frame ``index``."""
        ids = self.load_rgb_ids(index)
        uniq, inverse = np.unique(ids, return_inverse=True)
        self.check_segments(index, set(uniq.tolist()))
        seg = self.segments[index]
        cats = np.array([IGNORE_LABEL if u == 0 else seg[int(u)] for u in uniq], dtype=np.uint8)
        insts = np.array([0 if u == 0 else self.instance_of.get(int(u), 0) for u in uniq], dtype=np.int32)
        inverse = inverse.reshape(ids.shape)
        return cats[inverse], insts[inverse]

    def load_label(self, index: int) -> np.ndarray:
        """Semantic label uint8 [H, W]: categories 0..123, 255 void."""
        return self.load_panoptic(index)[0]

    def load_panoptic_ids(self, index: int, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> np.ndarray:
        """Library panoptic ids int32 [H, W] (0 void)."""
        return encode_panoptic(*self.load_panoptic(index), label_divisor=label_divisor)

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame uint8 [H, W, 3], library panoptic ids int32 [H, W]); DataError if sizes differ."""
        frame = self.load_frame(index)
        ids = self.load_panoptic_ids(index)
        check_same_size(self.frames[index], frame.shape[:2], self.mask_path(index), ids.shape)
        return frame, ids


def load_panoptic_json(path: Path) -> dict:
    """Load and shape-check a ``panoptic_gt_VIPSeg*.json``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"unreadable JSON ({exc})") from None
    if not isinstance(data, dict) or not {"videos", "annotations"} <= set(data):
        raise DataError(path, "not a VIPSeg panoptic JSON: needs 'videos' and 'annotations'")
    return data


def _segments_of(video_ann: dict, json_path: Path,
                 ) -> tuple[dict[str, tuple[dict[int, int], dict[int, int | None]]], dict[int, int]]:
    """Per image id the segments ({id: category}, {id: area}), and the instance number of every thing id."""
    is_thing = _is_thing_table()
    per_image: dict[str, tuple[dict[int, int], dict[int, int | None]]] = {}
    instance_of: dict[int, int] = {}
    count: dict[int, int] = {}
    for ann in video_ann.get("annotations", []):
        segs, areas = {}, {}
        for s in ann.get("segments_info", []):
            sid, cat = int(s["id"]), int(s["category_id"])
            if not 0 <= cat < NUM_VSPW_CLASSES:
                raise DataError(json_path, f"segment {sid} of {ann.get('file_name')} has category {cat} "
                                f"outside 0..{NUM_VSPW_CLASSES - 1}")
            segs[sid] = cat
            areas[sid] = None if s.get("area") is None else int(s["area"])
            if is_thing[cat] and sid not in instance_of:
                count[cat] = count.get(cat, 0) + 1
                instance_of[sid] = count[cat]
        per_image[str(ann.get("image_id", Path(str(ann.get("file_name", ""))).stem))] = (segs, areas)
    return per_image, instance_of


def _scan_720_video(root: Path, entry: dict, ann: dict | None, json_path: Path,
                    ) -> tuple[VIPSeg720Video | None, list[DataError]]:
    name = str(entry["video_id"])
    rec, problems = scan_video(name, root / "images" / name, root / "panomasksRGB" / name)
    if rec is None:
        return None, problems
    if ann is None:
        return None, problems + [DataError(json_path, f"video '{name}' has no annotations entry")]
    try:
        per_image, instance_of = _segments_of(ann, json_path)
    except DataError as exc:
        return None, problems + [exc]
    by_stem = {f.stem: i for i, f in enumerate(rec.frames)}
    keep = []
    for img in entry.get("images", []):
        stem = Path(str(img["file_name"])).stem
        if stem not in by_stem:
            problems.append(DataError(root / "images" / name, f"JSON image '{img['file_name']}' has no frame"))
        elif str(img["id"]) not in per_image:
            problems.append(DataError(json_path, f"image '{img['id']}' of video '{name}' has no annotation"))
        else:
            keep.append((by_stem[stem], per_image[str(img["id"])]))
    frames = tuple(rec.frames[i] for i, _ in keep)
    masks = tuple(rec.masks[i] for i, _ in keep)
    video = VIPSeg720Video(name, frames, masks, tuple(s for _, (s, _a) in keep), tuple(a for _, (_s, a) in keep),
                           instance_of, json_path)
    return video, problems


def find_720_json(root: Path, split: str | None) -> tuple[Path, list[str] | None]:
    """The JSON to read for ``split`` and, when it is the combined JSON, the split's video names."""
    if split is None:
        return root / JSON_NAME, None
    if split not in SPLITS:
        raise DataError(root, f"unknown VIPSeg split '{split}' (expected one of {', '.join(SPLITS)})")
    split_json = root / f"panoptic_gt_VIPSeg_{split}.json"
    if split_json.is_file():
        return split_json, None
    for folder in (root, root.parent):  # the official split files live in the raw root, the 720P folder's parent
        if (folder / f"{split}.txt").is_file():
            return root / JSON_NAME, read_split_file(folder / f"{split}.txt")
    raise DataError(root, f"no {split_json.name} and no {split}.txt beside or above it")


def scan_vipseg_720(root: str | os.PathLike, split: str | None = None,
                    ) -> tuple[list[VIPSeg720Video], list[DataError]]:
    """Scan the 720P COCO-style layout: JSON + ``images/`` + ``panomasksRGB/`` (no image decoding)."""
    root = Path(root)
    json_path, names = find_720_json(root, split)
    data = load_panoptic_json(json_path)
    anns = {str(a["video_id"]): a for a in data["annotations"]}
    entries = {str(v["video_id"]): v for v in data["videos"]}
    problems: list[DataError] = []
    if names is not None:
        problems += [DataError(root, f"{split}.txt names video '{n}' absent from {json_path.name}")
                     for n in names if n not in entries]
        entries = {n: entries[n] for n in names if n in entries}
    videos = []
    for entry in entries.values():
        video, probs = _scan_720_video(root, entry, anns.get(str(entry["video_id"])), json_path)
        problems += probs
        if video is not None:
            videos.append(video)
    return videos, problems


class VIPSeg720Dataset(VideoDataset):
    """The videos of a 720P COCO-style VIPSeg root, validated on construction.

    Args:
        root: the ``VIPSeg_720P`` folder.
        split: ``"train"``/``"val"`` read ``panoptic_gt_VIPSeg_<split>.json`` (or the combined JSON filtered by
            ``<split>.txt`` found in the root or its parent); None reads ``panoptic_gt_VIPSeg.json``.
    """

    num_classes = NUM_VSPW_CLASSES

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        ensure_complete(self.root)
        self.videos, problems = scan_vipseg_720(self.root, split)
        raise_first(problems)
        if not self.videos:
            raise DataError(self.root, "no videos found" + (f" in split '{split}'" if split else ""))

