"""DAVIS J (region IoU), F (boundary measure) and statistics: the reference implementation.

Semantics follow ``davis2017-evaluation`` (spec §3): J = |S∩G \\ void| / |S∪G \\ void| with J = 1 for
an empty union; F uses the BSDS ``seg2bmap`` boundary (no thinning) and a disk tolerance of
``ceil(0.008 * ||(H, W)||)`` pixels applied with ``cv2.dilate``; M / R / D statistics with the
overlapping decay bins. :mod:`vidseg.metrics.davis_fast` computes the same numbers faster;
:mod:`vidseg.metrics.davis_folder` holds the evaluator and folder scoring.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from vidseg.errors import DataError

BOUND_TH = 0.008


# ------------------------------------------------------------------------------------ J and F


def db_eval_iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray | float:
    """Region similarity J (``davis2017/metrics.py::db_eval_iou``).

    Args:
        gt: [..., H, W] binary masks.
        pred: [..., H, W] binary masks.
        void: optional [..., H, W] (broadcastable) mask of pixels to ignore.

    Returns:
        J per leading index (float for 2-D input); 1 where the union is empty.
    """
    gt, pred = gt.astype(bool), pred.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    inter = np.sum(gt & pred & keep, axis=(-2, -1))
    union = np.sum((gt | pred) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    if np.ndim(j) == 0:
        return 1.0 if union == 0 else float(j)
    j[union == 0] = 1
    return j


def bound_pixels(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Tolerance radius in pixels: ``bound_th`` if >= 1, else ceil(bound_th * diagonal) (8 at 480x854)."""
    return int(bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(shape)))


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """BSDS boundary map: a pixel differs from its E, S or SE neighbour (zero past the border).

    The last row compares E only, the last column S only, the bottom-right pixel is never a boundary.

    Args:
        seg: [H, W] mask.

    Returns:
        [H, W] bool boundary map.
    """
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def disk(radius: int) -> np.ndarray:
    """Disk structuring element X^2 + Y^2 <= r^2 as uint8 [2r+1, 2r+1] (skimage ``disk``)."""
    y, x = np.ogrid[-radius: radius + 1, -radius: radius + 1]
    return ((x * x + y * y) <= radius * radius).astype(np.uint8)


class Boundary:
    """The boundary of one mask, stored as a crop ``b`` at offset (y0, x0) of an (H, W) frame."""

    __slots__ = ("b", "y0", "x0", "count", "shape")

    def __init__(self, mask: np.ndarray) -> None:
        import cv2

        h, w = mask.shape
        self.shape = (h, w)
        m8 = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).astype(np.uint8)
        x, y, bw, bh = cv2.boundingRect(m8)
        if bw == 0:
            self.b, self.y0, self.x0, self.count = np.zeros((0, 0), bool), 0, 0, 0
            return
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        y1, x1 = min(y + bh + 1, h), min(x + bw + 1, w)
        self.b = seg2bmap(m8[y0:y1, x0:x1])
        self.y0, self.x0 = y0, x0
        self.count = int(np.count_nonzero(self.b))


def _matched(src: Boundary, ref: Boundary, r: int, kernel: np.ndarray) -> int:
    """Number of boundary pixels of ``src`` within the disk of radius r of a boundary pixel of ``ref``."""
    import cv2

    h, w = src.shape
    sy1, sx1 = src.y0 + src.b.shape[0], src.x0 + src.b.shape[1]
    ry1, rx1 = ref.y0 + ref.b.shape[0], ref.x0 + ref.b.shape[1]
    # window: src crop, which is all that is counted; ref pixels farther than r from it cannot matter
    y0, x0 = src.y0, src.x0
    if ref.y0 - r >= sy1 or ry1 + r <= y0 or ref.x0 - r >= sx1 or rx1 + r <= x0:
        return 0
    # ref crop clipped to the window grown by r, dilated, then read inside the window
    gy0, gx0 = max(y0 - r, 0), max(x0 - r, 0)
    gy1, gx1 = min(sy1 + r, h), min(sx1 + r, w)
    canvas = np.zeros((gy1 - gy0, gx1 - gx0), np.uint8)
    cy0, cx0 = max(ref.y0, gy0), max(ref.x0, gx0)
    cy1, cx1 = min(ry1, gy1), min(rx1, gx1)
    if cy0 >= cy1 or cx0 >= cx1:
        return 0
    canvas[cy0 - gy0: cy1 - gy0, cx0 - gx0: cx1 - gx0] = ref.b[cy0 - ref.y0: cy1 - ref.y0, cx0 - ref.x0: cx1 - ref.x0]
    dil = cv2.dilate(canvas, kernel)
    window = dil[y0 - gy0: sy1 - gy0, x0 - gx0: sx1 - gx0]
    return int(np.count_nonzero(window.view(bool) & src.b))


def f_from_boundaries(fg: Boundary, gt: Boundary, r: int, kernel: np.ndarray | None = None) -> float:
    """F measure from the two boundaries (precision/recall special cases of the official code)."""
    kernel = disk(r) if kernel is None else kernel
    return _f_score(fg.count, gt.count, lambda: _matched(fg, gt, r, kernel), lambda: _matched(gt, fg, r, kernel))


def _f_score(n_fg: int, n_gt: int, matched_fg: Callable[[], int], matched_gt: Callable[[], int]) -> float:
    """F = 2PR / (P + R) with the official special cases for empty boundaries (0 when P + R = 0).

    Args:
        n_fg, n_gt: boundary pixels of the prediction and of the ground truth.
        matched_fg, matched_gt: count the boundary pixels of each side within the tolerance of the other;
            called only when both boundaries are non-empty (matching is the expensive step).
    """
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = matched_fg() / float(n_fg)
        recall = matched_gt() / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH) -> float:
    """Boundary measure F of one frame (``davis2017/metrics.py::f_measure``).

    Args:
        pred: [H, W] binary prediction ("foreground_mask").
        gt: [H, W] binary ground truth.
        void: optional [H, W] void mask; both masks are multiplied by ¬void before boundary extraction.
        bound_th: tolerance; < 1 is a fraction of the image diagonal.
    """
    if pred.shape != gt.shape:
        raise DataError("F", f"mask sizes differ: {pred.shape} vs {gt.shape}")
    pred, gt = pred.astype(bool), gt.astype(bool)
    if void is not None:
        keep = ~void.astype(bool)
        pred, gt = pred & keep, gt & keep
    r = bound_pixels(gt.shape, bound_th)
    return f_from_boundaries(Boundary(pred), Boundary(gt), r)


# ------------------------------------------------------------------------------------ statistics


def db_statistics(values: np.ndarray, protocol: str = "official") -> tuple[float, float, float]:
    """Mean, recall and decay of per-frame values of one object (``davis2017/utils.py::db_statistics``).

    M = nanmean(v); R = nanmean(v > 0.5) (NaN counts as failure); D = nanmean(first quarter) -
    nanmean(last quarter) with 4 bins over ``round(linspace(1, N, 5) + 1e-10) - 1`` that overlap by one
    frame. ``official`` casts the bin ids to uint8 as the official code (wrong past 255 frames);
    ``strict`` keeps them as integers.
    """
    v = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        m = np.nanmean(v)
        r = np.nanmean(v > 0.5)
        ids = np.round(np.linspace(1, len(v), 5) + 1e-10) - 1
        ids = ids.astype(np.uint8) if protocol == "official" else ids.astype(np.int64)
        bins = [v[ids[i]: ids[i + 1] + 1] for i in range(4)]
        d = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(m), float(r), float(d)
