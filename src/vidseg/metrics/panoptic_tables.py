"""Per-frame segment tables for video panoptic metrics (VPQ, STQ).

Every VIPSeg metric only needs, for each frame, how many pixels each (GT segment id, predicted segment id)
pair shares, plus the segment lists of the JSON files. Such a table has a few dozen rows, so a frame is
decoded once, reduced to its table, and every window length k of VPQ and the STQ terms are computed from
the tables (tubes are keyed by ids that stay the same across frames, so a tube intersection over a window
is the sum of the per-frame pair counts of that window).

Decoding path (the speed-critical part): ``cv2.imdecode`` -> ``cvtColor(BGR2RGBA)`` makes a 4-byte pixel
whose little-endian uint32 value is ``id | 0xFF000000`` (``id = R + 256 G + 65536 B``); pairs are then
counted on runs of equal (GT, prediction) pixels in raster order, so the sort only sees one key per run.
No library offers "count pairs of RGB ids" directly, hence this small routine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseg.errors import DataError

ID_MASK = 0xFFFFFF
_ALPHA = np.uint32(0xFF000000)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette (indexed)", 4: "grayscale+alpha", 6: "RGBA"}


@dataclass
class SegmentList:
    """Segments of one frame as listed in a JSON ``segments_info`` (JSON order kept, duplicates kept).

    Attributes:
        ids: int64 [S] segment ids.
        categories: int64 [S] category ids.
        iscrowd: bool [S] (always False for predictions).
        areas: int64 [S] areas from the JSON (0 where the JSON has none).
    """

    ids: np.ndarray
    categories: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray

    @classmethod
    def from_json(cls, segments_info: list[dict], where: str | os.PathLike = "") -> SegmentList:
        """Build from a JSON ``segments_info`` list; raises DataError on a malformed entry."""
        try:
            ids = [json_int(s["id"], "id", where) for s in segments_info]
            cats = [json_int(s["category_id"], "category_id", where) for s in segments_info]
        except (KeyError, TypeError) as exc:
            raise DataError(where, f"malformed segments_info entry ({exc!r})") from None
        crowd = [bool(s.get("iscrowd", 0)) for s in segments_info]
        areas = [int(s.get("area", 0) or 0) for s in segments_info]
        return cls(np.array(ids, np.int64), np.array(cats, np.int64), np.array(crowd, bool),
                   np.array(areas, np.int64))

    @classmethod
    def empty(cls) -> SegmentList:
        z = np.zeros(0, np.int64)
        return cls(z, z.copy(), np.zeros(0, bool), z.copy())

    def __len__(self) -> int:
        return len(self.ids)


def json_int(value: object, key: str, where: str | os.PathLike = "") -> int:
    """An integer JSON value (``15`` or ``15.0``); anything else (``15.7``, ``"15"``, ``true``) is a DataError.

    ``int()`` would truncate 15.7 to 15 and score the segment as another category.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise DataError(where, f"segments_info {key} must be an integer, got {value!r}")
    return int(value)


@dataclass
class FrameTable:
    """Everything the panoptic metrics need from one frame (a few kB instead of an image).

    Attributes:
        gt_ids: int64 [Q] GT segment id of each pair (0 = void).
        pred_ids: int64 [Q] predicted segment id of each pair (0 = void / unlabelled).
        counts: int64 [Q] pixels of the pair; rows sorted by (gt_id, pred_id), counts > 0.
        gt_segments: the GT JSON segments of the frame.
        pred_segments: the prediction JSON segments of the frame.
        name: frame name (for messages).
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    counts: np.ndarray
    gt_segments: SegmentList = field(default_factory=SegmentList.empty)
    pred_segments: SegmentList = field(default_factory=SegmentList.empty)
    name: str = ""

    def gt_png_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, areas) of the GT PNG, ids ascending."""
        return _group_sum(self.gt_ids, self.counts)

    def pred_png_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, areas) of the prediction PNG, ids ascending."""
        return _group_sum(self.pred_ids, self.counts)


def _group_sum(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)


def pair_table(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count the pixels of every (GT id, predicted id) pair of one frame.

    Args:
        gt: integer id map [H, W] (values < 2**32).
        pred: integer id map [H, W], same shape.

    Returns:
        (gt_ids, pred_ids, counts), int64 arrays [Q] sorted by (gt_id, pred_id), counts > 0.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"pair_table: shapes differ, {gt.shape} vs {pred.shape}")
    g = np.ascontiguousarray(gt).ravel()
    p = np.ascontiguousarray(pred).ravel()
    return _pairs_from_runs(g, p)


def _pairs_from_runs(g: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair counts of two flat id arrays, by runs of equal pairs in raster order."""
    n = g.size
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z.copy(), z.copy()
    change = g[1:] != g[:-1]
    change |= p[1:] != p[:-1]
    starts = np.flatnonzero(change)
    starts += 1
    starts = np.concatenate(([0], starts))
    lengths = np.diff(np.append(starts, n))
    keys = (g[starts].astype(np.uint64) << np.uint64(32)) | p[starts].astype(np.uint64)
    uniq, inv = np.unique(keys, return_inverse=True)
    counts = np.bincount(inv, weights=lengths, minlength=len(uniq)).astype(np.int64)
    gt_ids = (uniq >> np.uint64(32)).astype(np.int64)
    pred_ids = (uniq & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return gt_ids, pred_ids, counts


def _png_header(data: np.ndarray, path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG byte buffer; raises DataError if not a PNG."""
    head = data[:26].tobytes()
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(path, "not a PNG file (expected an RGB PNG of segment ids R+256G+65536B)")
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


def read_rgb_ids(path: str | os.PathLike, allow_rgba: bool = True,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Decode an RGB-id PNG into uint32 values ``id | 0xFF000000`` ([H, W]).

    Args:
        path: the PNG file (COCO panoptic encoding, ``id = R + 256 G + 65536 B``, 0 = void).
        allow_rgba: accept RGBA files and ignore alpha (what the official ``np.array(Image.open())``
            indexing of channels 0..2 does); otherwise raise.
        out: optional reusable uint8 buffer [H, W, 4].

    Returns:
        uint32 array [H, W]; mask with ``ID_MASK`` to get ids (the high byte is 0xFF).
    """
    import cv2

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc})") from None
    width, height, depth, ctype = _png_header(data, path)
    if ctype not in (2, 6) or (ctype == 6 and not allow_rgba):
        kind = _PNG_COLOR_TYPES.get(ctype, f"colour type {ctype}")
        raise DataError(path, f"{kind} PNG, expected RGB ids (R+256G+65536B)")
    if depth != 8:
        raise DataError(path, f"{depth}-bit PNG, expected 8-bit RGB ids")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.shape[:2] != (height, width):
        raise DataError(path, "unreadable or truncated PNG")
    if out is None or out.shape != (height, width, 4):
        out = np.empty((height, width, 4), np.uint8)
    code = cv2.COLOR_BGR2RGBA if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
    cv2.cvtColor(img, code, dst=out)
    if img.shape[2] == 4:
        out[..., 3] = 255
    return out.view("<u4")[..., 0]


class FrameReader:
    """Reads GT/prediction RGB-id PNG pairs into pair tables, reusing two decode buffers.

    Args:
        allow_rgba: accept RGBA prediction PNGs (alpha ignored).
    """

    def __init__(self, allow_rgba: bool = True) -> None:
        self.allow_rgba = allow_rgba
        self._gbuf: np.ndarray | None = None
        self._pbuf: np.ndarray | None = None

    def read(self, gt_path: str | os.PathLike, pred_path: str | os.PathLike) -> tuple[np.ndarray, ...]:
        """(gt_ids, pred_ids, counts) of one frame (see :func:`pair_table`).

        Raises:
            DataError: unreadable file, wrong PNG kind, or prediction size differing from the GT.
        """
        gt = read_rgb_ids(gt_path, True, self._gbuf)
        self._gbuf = gt.base if gt.base is not None and gt.base.ndim == 3 else self._gbuf
        pred = read_rgb_ids(pred_path, self.allow_rgba, self._pbuf)
        self._pbuf = pred.base if pred.base is not None and pred.base.ndim == 3 else self._pbuf
        if pred.shape != gt.shape:
            raise DataError(pred_path, f"size {pred.shape[1]}x{pred.shape[0]} differs from the ground truth "
                                       f"{gt.shape[1]}x{gt.shape[0]} ({gt_path})")
        gt_ids, pred_ids, counts = _pairs_from_runs(gt.ravel(), pred.ravel())
        return gt_ids & ID_MASK, pred_ids & ID_MASK, counts
