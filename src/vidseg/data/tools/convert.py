"""Converters between official layouts: VSPW -> VSPW-480p and raw VIPSeg -> 720P COCO-style video panoptic.

Both follow the official scripts' behaviour (``change2_480p.py``; ``change2_720p.py`` +
``create_panoptic_video_labels.py`` + ``splitjson.py``) without their dependencies, and are safe to
interrupt: every file is written under a temporary name and renamed, the output root carries an
``.vidseg-incomplete`` marker while work is under way (readers refuse such a root), and the files that make
a layout look complete (split files, the panoptic JSON) are written last. Running the same command again
resumes: finished files (and, for VIPSeg, finished videos) are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from vidseg.categories import vipseg_categories
from vidseg.data.layout import INCOMPLETE_MARKER, check_same_size, raise_first
from vidseg.data.vipseg import JSON_NAME, raw_category, read_raw_panomask, scan_vipseg_raw, write_raw_panomask
from vidseg.data.vspw import read_raw_mask, scan_vspw, write_raw_mask
from vidseg.errors import DataError
from vidseg.fileio import atomic_path, read_image, write_text_atomic

PARTIAL_DIR = ".vidseg-partial"  # per-video JSON fragments of an unfinished VIPSeg conversion
COLOR_JITTER = 30  # thing colours are drawn within +-30 of the category colour (panopticapi's rule)


def resized_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """(width, height) after the official resize: ``(int(target * w / h), target)``."""
    return int(target_height * width / height), target_height


def _resize(arr: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(arr)
    if img.size == size:
        return arr
    return np.asarray(img.resize(size, Image.NEAREST if nearest else Image.BILINEAR))


def _save_jpeg(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="JPEG")  # PIL default quality, as the official scripts


def _save_rgb_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG")


def _check_paths(src: Path, out: Path, complete_marker: Path, run: str) -> None:
    """Refuse a missing source and unsafe, unrelated or already complete outputs.

    ``run`` describes this conversion (kind, source, options); an interrupted run resumes only when its marker
    holds the same description, and a non-empty folder without a marker is somebody else's folder.
    """
    if not src.is_dir():
        raise DataError(src, "source dataset folder not found")
    if out.exists() and not out.is_dir():
        raise DataError(out, "is a file; expected an output folder")
    if out.resolve() == src.resolve():
        raise DataError(out, "output folder must differ from the source")
    marker = out / INCOMPLETE_MARKER
    if complete_marker.exists() and not marker.exists():
        raise DataError(out, f"already holds a complete conversion ({complete_marker.name}); remove it first")
    if marker.is_file():
        previous = marker.read_text(encoding="utf-8", errors="replace").strip()
        if previous != run and previous != _LEGACY_MARKER:
            raise DataError(out, f"holds an interrupted conversion of another source or options ({previous}); "
                                 "remove the folder or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise DataError(out, "is not empty and not an earlier run of this conversion; choose a new or empty --out")


_LEGACY_MARKER = "vidseg convert in progress"


def _run_description(kind: str, src: Path, **options: object) -> str:
    """One line naming a conversion: kind, resolved source and options (stored in the incomplete marker)."""
    opts = " ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{kind} from {src.resolve()} {opts}".strip()


def _start(out: Path, run: str) -> None:
    """Mark ``out`` incomplete until :func:`_finish` (the marker names the run, for a safe resume)."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / INCOMPLETE_MARKER, run + "\n")


def _finish(out: Path) -> None:
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    (out / INCOMPLETE_MARKER).unlink(missing_ok=True)


def _copy_text(src: Path, dst: Path) -> None:
    if src.is_file():
        write_text_atomic(dst, src.read_text(encoding="utf-8"))


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled)


# ----------------------------------------------------------------------------------------------------------
# VSPW -> 480p
# ----------------------------------------------------------------------------------------------------------

def _convert_vspw_frame(frame: Path, mask: Path | None, out_video: Path, height: int) -> None:
    out_frame = out_video / "origin" / frame.name
    out_mask = out_video / "mask" / (frame.stem + ".png")
    if out_frame.exists() and (mask is None or out_mask.exists()):
        return  # done in an earlier, interrupted run
    rgb = read_image(frame, "RGB")
    size = resized_size(rgb.shape[1], rgb.shape[0], height)
    if mask is not None:
        raw = read_raw_mask(mask)
        check_same_size(frame, rgb.shape[:2], mask, raw.shape)
        write_raw_mask(out_mask, _resize(raw, size, nearest=True))
    _save_jpeg(out_frame, _resize(rgb, size, nearest=False))


def convert_vspw_480p(src: str | os.PathLike, out: str | os.PathLike, height: int = 480,
                      progress: bool = True) -> dict[str, int]:
    """Resize a VSPW root to VSPW-480p: frames BILINEAR, masks NEAREST, size ``(int(480 w / h), 480)``.

    Args:
        src: VSPW root (``data/``, split files).
        out: output root (created); an interrupted conversion into it is resumed.
        height: target height.
        progress: show a progress bar.

    Returns:
        counts: ``videos``, ``frames``, ``masks``.

    Raises:
        DataError: a structural problem of the source (missing mask, empty video, ...), an unreadable
            frame or mask, a mask of the wrong mode, size or values.
    """
    src, out = Path(src), Path(out)
    run = _run_description("vspw-480p", src, height=height)
    _check_paths(src, out, out / "train.txt", run)
    videos, problems = scan_vspw(src)
    raise_first(problems)
    _start(out, run)
    total = sum(len(v) for v in videos)
    with _progress(total, "vspw-480p", progress) as bar:
        for video in videos:
            for frame, mask in zip(video.frames, video.masks, strict=True):
                _convert_vspw_frame(frame, mask, out / "data" / video.name, height)
                bar.update(1)
    _copy_text(src / "label_num_dic_final.json", out / "label_num_dic_final.json")
    for split in ("val", "test", "train"):  # train.txt last: its presence marks a complete output
        _copy_text(src / f"{split}.txt", out / f"{split}.txt")
    if not (out / "train.txt").exists():
        write_text_atomic(out / "train.txt", "")
    _finish(out)
    masks = sum(m is not None for v in videos for m in v.masks)
    return {"videos": len(videos), "frames": total, "masks": masks}


# ----------------------------------------------------------------------------------------------------------
# VIPSeg raw -> 720P COCO style
# ----------------------------------------------------------------------------------------------------------

class SegmentIdAssigner:
    """Segment ids of one video, following the rule of panopticapi's ``IdGenerator``.

    panopticapi is not on PyPI, so this is our own implementation of its documented behaviour: a stuff
    segment's id is its category colour (``rgb2id``), the same in every frame and video; the first thing
    segment of a category takes the category colour if no stuff category owns it, later ones (and those
    whose colour is owned) a random colour within +-30 per channel of it, never one already used in the
    video. The official script makes one generator per video, so ids are unique within a video.

    Args:
        rng: the random generator (seed it for deterministic ids).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.categories = vipseg_categories()
        self.taken = {(0, 0, 0)} | {c.color for c in self.categories if not c.isthing}

    def color(self, category: int) -> tuple[int, int, int]:
        """The colour (R, G, B) of a new segment of ``category`` (0-based)."""
        cat = self.categories[category]
        if not cat.isthing:
            return cat.color
        if cat.color not in self.taken:
            self.taken.add(cat.color)
            return cat.color
        base = np.array(cat.color)
        for _ in range(100_000):
            jitter = self.rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, size=3)
            cand = tuple(int(v) for v in np.clip(base + jitter, 0, 255))
            if cand not in self.taken:
                self.taken.add(cand)
                return cand  # type: ignore[return-value]
        raise DataError(cat.name, "no free segment colour left near the category colour")


def video_rng(seed: int, video: str) -> np.random.Generator:
    """Per-video generator: ids do not depend on which other videos are converted, or in which order."""
    return np.random.default_rng([int(seed), zlib.crc32(video.encode("utf-8"))])


def _frame_segments(raw: np.ndarray, path: Path, assigner: SegmentIdAssigner,
                    colors: dict[int, tuple[int, int, int]]) -> tuple[np.ndarray, dict[int, int], dict[int, int]]:
    """RGB-id image uint8 [H, W, 3] of one raw panomask, its segments {id: category} and areas {id: pixels}.

    Areas are the pixel counts of the RGB image returned (which is written losslessly as the PNG); two raw
    values that map to one id (stuff stored with an instance number) merge, as in the official script.
    """
    counts = np.bincount(raw.ravel())  # raw values are < 2**16: a lookup table beats per-value masks
    lut = np.zeros((counts.size, 3), np.uint8)
    segments: dict[int, int] = {}
    areas: dict[int, int] = {}
    for value in np.flatnonzero(counts).tolist():
        if value == 0:
            continue
        cat = int(raw_category(np.array(value)))
        if not 0 <= cat < len(assigner.categories):
            raise DataError(path, f"panomask value {value} decodes to category {cat + 1} outside 1..124")
        if value not in colors:  # the same raw value keeps its id across the frames of the video
            colors[value] = assigner.color(cat)
        lut[value] = colors[value]
        sid = colors[value][0] + 256 * colors[value][1] + 65536 * colors[value][2]
        segments[sid] = cat
        areas[sid] = areas.get(sid, 0) + int(counts[value])
    return lut[raw], segments, areas


def _convert_vipseg_video(video, out: Path, seed: int, height: int, bar) -> dict:
    """Write one video's images, 720P panomasks and RGB ids; returns its JSON fragment."""
    assigner = SegmentIdAssigner(video_rng(seed, video.name))
    colors: dict[int, tuple[int, int, int]] = {}
    images, annotations = [], []
    for frame, mask in zip(video.frames, video.masks, strict=True):
        rgb = read_image(frame, "RGB")
        raw = read_raw_panomask(mask)
        check_same_size(frame, rgb.shape[:2], mask, raw.shape)
        size = resized_size(rgb.shape[1], rgb.shape[0], height)
        raw = _resize(raw.astype(np.uint16), size, nearest=True)
        ids_rgb, segments, area = _frame_segments(raw, mask, assigner, colors)
        _save_jpeg(out / "images" / video.name / frame.name, _resize(rgb, size, nearest=False))
        write_raw_panomask(out / "panomasks" / video.name / mask.name, raw)
        _save_rgb_png(out / "panomasksRGB" / video.name / mask.name, ids_rgb)
        infos = [{"id": sid, "category_id": cat, "iscrowd": 0, "area": int(area[sid])} for sid, cat in segments.items()]
        images.append({"id": mask.stem, "width": size[0], "height": size[1], "file_name": mask.name})
        annotations.append({"image_id": mask.stem, "file_name": mask.name, "segments_info": infos})
        bar.update(1)
    return {"video": {"video_id": video.name, "images": images},
            "annotation": {"video_id": video.name, "annotations": annotations}}


def _category_list() -> list[dict]:
    return [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
            for c in vipseg_categories()]


def _write_json(path: Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data))


def _video_fragment(video, out: Path, seed: int, height: int, bar) -> dict:
    """The JSON fragment of one video, from an earlier run when finished there, else converted now."""
    part = out / PARTIAL_DIR / f"{video.name}.json"
    if part.is_file():
        frag = json.loads(part.read_text(encoding="utf-8"))
        if frag.get("seed") == seed and frag.get("height") == height:
            bar.update(len(video))
            return frag
    frag = _convert_vipseg_video(video, out, seed, height, bar)
    frag.update(seed=seed, height=height)
    _write_json(part, frag)
    return frag


def convert_vipseg_720p(src: str | os.PathLike, out: str | os.PathLike, seed: int = 0, height: int = 720,
                        progress: bool = True) -> dict[str, int]:
    """Turn a raw VIPSeg release into the 720P COCO-style video panoptic layout.

    Writes ``images/`` (BILINEAR), ``panomasks/`` (NEAREST, 16-bit), ``panomasksRGB/`` (RGB ids),
    ``panoptic_gt_VIPSeg_{train,val}.json`` (for the split files found in ``src``), the split files, the
    category list, and last ``panoptic_gt_VIPSeg.json``. As in the official scripts, videos without masks
    (the test split) are skipped.

    Args:
        src: raw root (``imgs/``, ``panomasks/``, split files).
        out: output root; an interrupted conversion into it is resumed (finished videos are kept).
        seed: seed of the thing-colour draws; the same seed gives the same ids and bytes.
        height: target height.
        progress: show a progress bar.

    Returns:
        counts: ``videos``, ``frames``, ``segments``.
    """
    src, out = Path(src), Path(out)
    run = _run_description("vipseg-720p", src, height=height, seed=seed)
    _check_paths(src, out, out / JSON_NAME, run)
    videos, problems = scan_vipseg_raw(src)
    raise_first(problems)
    _start(out, run)
    videos = [v for v in videos if v.has_labels]
    frags = []
    with _progress(sum(len(v) for v in videos), "vipseg-720p", progress) as bar:
        for video in videos:
            frags.append(_video_fragment(video, out, seed, height, bar))
    cats = _category_list()
    full = {"videos": [f["video"] for f in frags], "annotations": [f["annotation"] for f in frags],
            "categories": cats}
    for split in ("train", "val"):
        if (src / f"{split}.txt").is_file():
            names = set((src / f"{split}.txt").read_text(encoding="utf-8").split())
            _write_json(out / f"panoptic_gt_VIPSeg_{split}.json",
                        {k: (v if k == "categories" else [e for e in v if e["video_id"] in names])
                         for k, v in full.items()})
    for split in ("train", "val", "test"):
        _copy_text(src / f"{split}.txt", out / f"{split}.txt")
    _write_json(out / "panoVIPSeg_categories.json", cats)
    _write_json(out / JSON_NAME, full)  # last: its presence marks a complete output
    _finish(out)
    segments = sum(len(a["segments_info"]) for f in frags for a in f["annotation"]["annotations"])
    return {"videos": len(frags), "frames": sum(len(f["video"]["images"]) for f in frags), "segments": segments}
