"""DAVIS J (region IoU), F (boundary measure), statistics and the semi-/unsupervised protocols.

Semantics follow ``davis2017-evaluation`` (spec §3): J = |S∩G \\ void| / |S∪G \\ void| with J = 1 for
an empty union; F uses the BSDS ``seg2bmap`` boundary (no thinning) and a disk tolerance of
``ceil(0.008 * ||(H, W)||)`` pixels applied with ``cv2.dilate``; M / R / D statistics with the
overlapping decay bins. The fast paths compute exactly the same numbers:

* One scan of the joint code ``gt * k + res`` (on the bounding box of the non-zero pixels) lists
  every pixel that can be on a boundary of either map, with its E/S/SE labels; each object's BSDS
  boundary is selected among those, and the joint pixel table for J is the sum of the horizontal
  run lengths per code (:class:`JointBoundaries`). With void, each map is scanned on its own and J
  comes from a joint histogram without the void pixels.
* F counts boundary pixels within Euclidean distance r of the other boundary: the disk is an exact
  union of a few rectangles, each tested with 4 reads of an integral image (:func:`_count_within`),
  which equals reading ``cv2.dilate(boundary, disk(r))`` at those pixels.
* Label PNGs are decoded straight into the numpy array (:func:`_read_index_png`).
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from vidseg.errors import DataError
from vidseg.metrics.evaluator import Evaluator, check_protocol

BOUND_TH = 0.008
MAX_PROPOSALS = 20
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


_SCRATCH = threading.local()


def _scratch(key: str, size: int, dtype) -> np.ndarray:
    """A reusable 1-D work array of ``size`` elements (contents undefined), one per key and thread.

    The per-frame temporaries are frame-sized (400k+ elements); allocating them anew costs more than
    the arithmetic, because freed blocks of that size go back to the OS and every reuse page-faults.
    Only for temporaries that never leave the function using them.
    """
    store = _SCRATCH.__dict__
    buf = store.get(key)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype)
        store[key] = buf
    return buf[:size]


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


# ------------------------------------------------------------------------------------ per frame


def _pair_counts(gt: np.ndarray, res: np.ndarray, n_gt: int, n_res: int, void: np.ndarray | None):
    """Joint histogram table[g, p] of object ids (0 = background), void pixels dropped."""
    k = n_res + 1
    if gt.dtype == np.uint8 and res.dtype == np.uint8 and gt.size < 2**24:
        import cv2

        mask = None if void is None else (~void).view(np.uint8)
        h = cv2.calcHist([gt, res], [0, 1], mask, [n_gt + 1, k], [0, n_gt + 1, 0, k])
        return h.astype(np.int64)
    idx = gt.astype(np.int64) * k + res
    if void is not None:
        idx = idx[~void]
    return np.bincount(idx.ravel(), minlength=(n_gt + 1) * k)[: (n_gt + 1) * k].reshape(n_gt + 1, k)


def nonzero_box(labels: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (y0, x0, y1, x1), ends exclusive, of the non-zero pixels of [H, W]; None if none."""
    if labels.dtype == np.uint8 and labels.ndim == 2 and labels.size:
        import cv2

        x, y, w, h = cv2.boundingRect(labels)
        return None if w == 0 else (y, x, y + h, x + w)
    rows = np.flatnonzero(labels.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(labels.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


class _Scan:
    """Pixels of a label map that differ from their E, S or SE neighbour, with the four labels.

    The map is padded by one column and one row of a sentinel label and flattened, so that the three
    neighbours are the 1-D shifts +1, +W+1 and +W+2 (contiguous comparisons, several times faster than
    2-D slices). The sentinel makes every pixel of the last row and column a candidate; their labels
    are then set so that the BSDS border rules hold: the last row compares E only, the last column S
    only, the bottom-right corner nothing. Only the bounding box of the non-zero labels, grown by one
    pixel, is scanned: every object boundary pixel lies in the box grown by one pixel up/left, and
    growing it down/right too keeps the border rules exact (outside the image they are seg2bmap's
    own; inside, the extra row/column is background with background neighbours, a boundary under
    neither rule).

    Attributes:
        ys, xs: [N] candidate pixels (frame coordinates), in raster order.
        lp, le, ls, lse: [N] labels of the pixel and of its E, S, SE neighbours (border rules applied).
        run_end: [N] the pixel ends a horizontal run of equal labels (differs from E, or last column).
        box: the scanned window (y0, x0, y1, x1), or None when the map is all zero.
    """

    def __init__(self, labels: np.ndarray) -> None:
        empty = np.zeros(0, np.intp)
        self.ys = self.xs = self.lp = self.le = self.ls = self.lse = empty
        self.run_end = np.zeros(0, bool)
        box = nonzero_box(labels)
        self.box = None
        if box is None:
            return
        y0, x0 = max(box[0] - 1, 0), max(box[1] - 1, 0)
        y1, x1 = min(box[2] + 1, labels.shape[0]), min(box[3] + 1, labels.shape[1])
        self.box = (y0, x0, y1, x1)
        self._scan(labels[y0:y1, x0:x1])
        self.ys, self.xs = self.ys + y0, self.xs + x0

    def _scan(self, labels: np.ndarray) -> None:
        h, w = labels.shape
        small = labels.dtype == np.uint8 and int(labels.max()) < 255
        lab = labels if small else labels.astype(np.int64)
        sentinel = 255 if small else -1  # a label no pixel has
        stride = w + 1
        pad = _scratch("scan_pad", (h + 1) * stride + 1, lab.dtype)  # +1: the SE shift of the last entry
        pad.fill(sentinel)
        pad[: (h + 1) * stride].reshape(h + 1, stride)[:h, :w] = lab
        n = h * stride
        here = pad[:n]
        # differs from E, S or SE; where it equals S, differing from SE means S differs from its own E
        horiz = np.not_equal(pad[: n + stride], pad[1: n + stride + 1], out=_scratch("scan_horiz", n + stride, bool))
        cand = np.not_equal(here, pad[stride: n + stride], out=_scratch("scan_cand", n, bool))
        cand |= horiz[:n]
        cand |= horiz[stride:]
        flat = np.flatnonzero(cand)
        ys, xs = np.divmod(flat, stride)
        inside = xs < w  # drop the padding column
        flat, ys, xs = flat[inside], ys[inside], xs[inside]
        self.ys, self.xs = ys, xs
        lp = here.take(flat)
        le, ls, lse = pad.take(flat + 1), pad.take(flat + stride), pad.take(flat + stride + 1)
        self.run_end = lp != le  # the last column differs from the padding
        last_row, last_col = ys == h - 1, xs == w - 1
        self.ls = np.where(last_row, lp, ls)
        self.lse = np.where(last_row | last_col, lp, lse)
        self.le = np.where(last_col, lp, le)
        self.lp = lp


def _boundary_points(lp, le, ls, lse, ys, xs, i: int) -> tuple[np.ndarray, np.ndarray]:
    a = lp == i
    b = (a != (le == i)) | (a != (ls == i)) | (a != (lse == i))
    return ys[b], xs[b]


class LabelBoundaries:
    """BSDS boundaries of every object of a label map, from one pass over the frame.

    A pixel can be on the boundary of object i only where its label differs from its E, S or SE
    neighbour; those pixels are few, so they are listed once (:class:`_Scan`) and each object's
    boundary (``seg2bmap(L == i)``, same border rules) is selected among them.

    Args:
        labels: [H, W] integer label map (void already set to 0).
    """

    def __init__(self, labels: np.ndarray) -> None:
        self.shape = labels.shape
        self.scan = _Scan(labels)

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(ys, xs): the boundary pixels of object ``i``, two [N] integer arrays."""
        sc = self.scan
        return _boundary_points(sc.lp, sc.le, sc.ls, sc.lse, sc.ys, sc.xs, i)


class JointBoundaries:
    """Boundaries of every object of two label maps and their joint pixel table, from one scan.

    The two maps are combined into one code ``gt * k + res``; a pixel can be on a boundary of either map
    only where the code differs from an E, S or SE neighbour, so one :class:`_Scan` of the code lists the
    candidates of both. The same candidates hold every end of a horizontal run of equal codes, so the
    joint table ``table[g, p] = |{gt == g} ∩ {res == p}|`` is the sum of run lengths per code (the
    pixels outside the scanned box are all (0, 0)); no pass per object is needed for J.

    Args:
        gt: [H, W] uint8 ids < k.
        res: [H, W] uint8 ids < k.
        k: one more than the largest id of either map.
    """

    def __init__(self, gt: np.ndarray, res: np.ndarray, k: int) -> None:
        h, w = gt.shape
        self.k = k
        wide = k * k > 255  # uint8 codes must stay < 255, the scan's sentinel
        code = _scratch("joint_code", h * w, np.int32 if wide else np.uint8).reshape(h, w)
        np.multiply(gt, np.int32(k) if wide else np.uint8(k), out=code, casting="unsafe")  # < k * k: no wrap
        code += res
        sc = _Scan(code)
        self.scan = sc
        table = np.zeros(k * k, np.int64)
        if sc.box is not None:
            y0, x0, y1, x1 = sc.box
            ends = np.flatnonzero(sc.run_end)
            pos = (sc.ys[ends] - y0) * (x1 - x0) + (sc.xs[ends] - x0)  # raster index inside the box
            lengths = np.diff(pos, prepend=-1)
            table += np.bincount(sc.lp[ends].astype(np.intp), weights=lengths, minlength=k * k).astype(np.int64)
            table[0] += h * w - (y1 - y0) * (x1 - x0)
        else:
            table[0] = h * w
        self.table = table.reshape(k, k)
        self._sides = [tuple(v // k for v in (sc.lp, sc.le, sc.ls, sc.lse)),
                       tuple(v % k for v in (sc.lp, sc.le, sc.ls, sc.lse))]

    def points(self, side: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(ys, xs): the boundary pixels of object ``i`` of ``gt`` (side 0) or ``res`` (side 1)."""
        return _boundary_points(*self._sides[side], self.scan.ys, self.scan.xs, i)


@functools.cache
def disk_rectangles(r: int) -> tuple[tuple[int, int], ...]:
    """The disk X^2 + Y^2 <= r^2 as a union of centred rectangles (half-width, half-height).

    Row |dy| of the disk spans |dx| <= isqrt(r^2 - dy^2); the rectangle of half-height dy and that
    half-width lies inside the disk, and keeping only the widest one per width gives a small exact cover.
    The rectangles are listed largest area first, so that most points are settled by the first test.
    """
    half = [math.isqrt(r * r - dy * dy) for dy in range(r + 1)]
    rects = [(half[dy], dy) for dy in range(r + 1) if dy == r or half[dy + 1] < half[dy]]
    return tuple(sorted(rects, key=lambda wh: -(2 * wh[0] + 1) * (2 * wh[1] + 1)))


Points = tuple[np.ndarray, np.ndarray]


def _count_within(src: Points, ref: Points, r: int) -> int:
    """Number of points of ``src`` with a point of ``ref`` at squared distance <= r^2.

    Equals counting ``src`` pixels inside ``cv2.dilate(ref, disk(r))``: the disk is an exact union of
    a few rectangles (:func:`disk_rectangles`) and each rectangle is tested with 4 reads of an
    integral image of the ref pixels over the window around ``src`` (flat ``take`` reads; a point
    found in one rectangle is not tested again). Written here because no library offers a sparse
    "any point within a Euclidean radius" count on pixel sets that is exact and this cheap.
    """
    import cv2

    sy, sx = src
    ry, rx = ref
    if len(sy) == 0 or len(ry) == 0:
        return 0
    y0, x0 = int(sy.min()) - r, int(sx.min()) - r
    y1, x1 = int(sy.max()) + r + 1, int(sx.max()) + r + 1
    keep = (ry >= y0) & (ry < y1) & (rx >= x0) & (rx < x1)
    if not keep.any():
        return 0
    hh, ww = y1 - y0, x1 - x0
    grid = _scratch("within_grid", hh * ww, np.uint8)
    grid.fill(0)
    grid[(ry[keep] - y0) * ww + (rx[keep] - x0)] = 1
    stride = ww + 1
    out = _scratch("within_integral", (hh + 1) * stride, np.int32).reshape(hh + 1, stride)
    flat = cv2.integral(grid.reshape(hh, ww), sum=out).ravel()  # [(hh + 1) * (ww + 1)] int32, into out
    pending = (sy - y0) * stride + (sx - x0)  # integral index of each point; >= r from the window edges
    for w, h in disk_rectangles(r):
        lo, hi = -h * stride, (h + 1) * stride
        total = flat.take(pending + (hi + w + 1)) - flat.take(pending + (lo + w + 1))
        total -= flat.take(pending + (hi - w))
        total += flat.take(pending + (lo - w))
        pending = pending[total == 0]
        if len(pending) == 0:
            break
    return len(sy) - len(pending)


def _f_points(fg: Points, gt: Points, r: int) -> float:
    return _f_score(len(fg[0]), len(gt[0]), lambda: _count_within(fg, gt, r), lambda: _count_within(gt, fg, r))


def _j_from_table(table: np.ndarray, n_gt: int, n_res: int) -> np.ndarray:
    """J [n_res, n_gt] from a joint table[g, p] of pixel counts (rows: GT ids, columns: proposal ids)."""
    inter = table[1: n_gt + 1, 1: n_res + 1].T.astype(np.float64)
    union = table[1: n_gt + 1, :].sum(1)[None, :] + table[:, 1: n_res + 1].sum(0)[:, None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union == 0, 1.0, inter / np.where(union == 0, 1, union))


def frame_scores(gt: np.ndarray, res: np.ndarray, n_gt: int, n_res: int, *, void: np.ndarray | None = None,
                 pairs: str = "diagonal", bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """J and F of one frame for objects 1..n_gt against proposals 1..n_res.

    Without void and on uint8 maps (the folder evaluation) one :class:`JointBoundaries` scan gives the
    boundaries of both maps and the pixel table for J; otherwise each map is scanned on its own
    (:class:`LabelBoundaries`) and J comes from a joint histogram that drops void pixels.

    Args:
        gt: [H, W] object ids 0..n_gt (anything else must already be mapped to 0 or void).
        res: [H, W] proposal ids 0..n_res.
        n_gt, n_res: numbers of objects / proposals.
        void: optional [H, W] bool void mask.
        pairs: ``diagonal`` (object i vs proposal i, semi-supervised; needs n_res == n_gt) or ``all``.
        bound_th: F tolerance.

    Returns:
        (J, F): arrays [n_gt] for ``diagonal`` or [n_res, n_gt] for ``all``.
    """
    r = bound_pixels(gt.shape, bound_th)
    if void is not None and not void.any():
        void = None  # nothing to drop: the same numbers as without void
    if void is None and gt.dtype == np.uint8 and res.dtype == np.uint8 and gt.size:
        k = max(n_gt, n_res, int(gt.max()), int(res.max())) + 1
        jb = JointBoundaries(gt, res, k)
        j = _j_from_table(jb.table, n_gt, n_res)
        gpts = [jb.points(0, i) for i in range(1, n_gt + 1)]
        rpts = functools.partial(jb.points, 1)
    else:
        gb = LabelBoundaries(gt if void is None else np.where(void, 0, gt))
        rb = LabelBoundaries(res if void is None else np.where(void, 0, res))
        j = _j_from_table(_pair_counts(gt, res, n_gt, n_res, void), n_gt, n_res)
        gpts = [gb.points(i) for i in range(1, n_gt + 1)]
        rpts = rb.points
    if pairs == "diagonal":
        f = np.array([_f_points(rpts(i), gpts[i - 1], r) for i in range(1, n_gt + 1)])
        return (np.diag(j).copy() if n_gt else np.zeros(0)), f
    f = np.zeros((n_res, n_gt))
    for p in range(1, n_res + 1):
        ppts = rpts(p)
        for g in range(n_gt):
            f[p - 1, g] = _f_points(ppts, gpts[g], r)
    return j, f


# ------------------------------------------------------------------------------------ evaluator


class DAVISEvaluator(Evaluator):
    """J/F per object and frame, statistics, global results, for semi-supervised or unsupervised.

    ``process(sequence, gt_frames, res_frames)`` takes one whole sequence: GT label maps (DAVIS indexed
    PNG values: 0 background, 1..N objects, 255 void) and result label maps (object / proposal ids).

    Args:
        task: ``semi-supervised`` (first and last frame excluded, objects = max id of the first GT
            frame, GT 255 -> background, no void) or ``unsupervised`` (all frames, void used, up to
            20 proposals matched to objects by the Hungarian algorithm on -mean (J+F)/2).
        protocol: ``official`` or ``strict`` (decay bins without the uint8 wrap; unsupervised per-object
            rows in GT order instead of the official proposal order).
        bound_th: F tolerance.
        binary: DAVIS-2016 style: all GT objects merged into one, any result value > 0 is foreground.
    """

    def __init__(self, task: str = "semi-supervised", protocol: str = "official", bound_th: float = BOUND_TH,
                 binary: bool = False) -> None:
        from vidseg.errors import ConfigError

        if task not in ("semi-supervised", "unsupervised"):
            raise ConfigError(f"unknown DAVIS task {task!r}; choose semi-supervised or unsupervised")
        self.task = task
        self.protocol = check_protocol(protocol)
        self.bound_th = bound_th
        self.binary = binary
        self.reset()

    def reset(self) -> None:
        self.objects: dict[str, dict[str, np.ndarray]] = {}  # "<seq>_<k>" -> {"J": [T'], "F": [T']}

    def process(self, sequence: str, gt_frames: list[np.ndarray], res_frames: list[np.ndarray | None],  # type: ignore[override]
                names: list[str] | None = None) -> None:
        """Score one sequence. ``res_frames[0]``/``[-1]`` may be None in semi-supervised (not read)."""
        j, f = score_sequence(gt_frames, res_frames, self.task, self.protocol, self.bound_th, self.binary,
                              names or [sequence] * len(gt_frames))
        for k in range(j.shape[0]):
            key = f"{sequence}_{k + 1}"
            if key in self.objects:
                raise DataError(sequence, "sequence processed twice")
            self.objects[key] = {"J": j[k], "F": f[k]}

    def per_object(self) -> dict[str, dict[str, float]]:
        """{"<seq>_<k>": {J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay}}."""
        out = {}
        for key, v in self.objects.items():
            jm, jr, jd = db_statistics(v["J"], self.protocol)
            fm, fr, fd = db_statistics(v["F"], self.protocol)
            out[key] = {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
        return out

    def evaluate(self) -> dict[str, Any]:
        """Global results: mean over objects of each statistic, J&F-Mean = (J-Mean + F-Mean) / 2."""
        per = self.per_object()
        if not per:
            return dict.fromkeys(GLOBAL_COLUMNS, float("nan")) | {"num_objects": 0}
        cols = {c: float(np.mean([p[c] for p in per.values()])) for c in GLOBAL_COLUMNS[1:]}
        return {"J&F-Mean": (cols["J-Mean"] + cols["F-Mean"]) / 2.0, **cols, "num_objects": len(per)}

    def state_dict(self) -> dict[str, Any]:
        return {"objects": {k: dict(v) for k, v in self.objects.items()}}

    def merge(self, other_state: dict[str, Any]) -> None:
        for key, v in other_state["objects"].items():
            if key in self.objects:
                raise DataError(key, "object present in two merged evaluator states")
            self.objects[key] = v


def _prepare_gt(gt: np.ndarray, n_gt: int, task: str, binary: bool) -> tuple[np.ndarray, np.ndarray | None]:
    void = gt == 255 if task == "unsupervised" else None
    if binary:
        return ((gt != 0) & (gt != 255)).view(np.uint8), void
    if gt.dtype == np.uint8 and gt.ndim == 2 and gt.size and n_gt < 255:
        import cv2

        # one pass: values > n_gt (ids absent from the first frame, and void 255) become background
        return cv2.threshold(gt, n_gt, 0, cv2.THRESH_TOZERO_INV)[1], void
    g = gt.astype(np.uint8) if gt.dtype != np.uint8 and gt.max() <= 255 else gt.copy()
    g[(g > n_gt) | (g == 255)] = 0  # ids absent from the first frame and void are background
    return g, void


def _prepare_res(res: np.ndarray, name: str, gt_shape: tuple, binary: bool) -> np.ndarray:
    if res.ndim != 2:
        raise DataError(name, f"result must be an indexed (single-channel) PNG, got shape {res.shape}")
    if res.shape != gt_shape:
        raise DataError(name, f"result size {res.shape[::-1]} differs from ground truth {gt_shape[::-1]} (W, H)")
    if binary:
        return (res > 0).view(np.uint8)
    if res.dtype != np.uint8 and res.size and res.min() >= 0 and res.max() <= 255:
        return res.astype(np.uint8)
    return res


def score_sequence(gt_frames: list[np.ndarray], res_frames: list[np.ndarray | None], task: str,
                   protocol: str = "official", bound_th: float = BOUND_TH, binary: bool = False,
                   names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F of one sequence: arrays [n_objects, n_evaluated_frames]."""
    if len(gt_frames) != len(res_frames):
        raise DataError(names[0] if names else "results", f"{len(gt_frames)} GT frames but {len(res_frames)} results")
    names = names or [f"frame {i}" for i in range(len(gt_frames))]
    first = gt_frames[0]
    n_gt = 1 if binary else int(np.max(np.where(first == 255, 0, first)))
    idx = range(1, len(gt_frames) - 1) if task == "semi-supervised" else range(len(gt_frames))
    if task == "semi-supervised":
        return _score_semi(gt_frames, res_frames, list(idx), n_gt, bound_th, binary, names)
    return _score_unsup(gt_frames, res_frames, list(idx), n_gt, protocol, bound_th, binary, names)


def _score_semi(gt_frames, res_frames, idx, n_gt, bound_th, binary, names):
    j = np.zeros((n_gt, len(idx)))
    f = np.zeros((n_gt, len(idx)))
    for col, t in enumerate(idx):
        g, _ = _prepare_gt(gt_frames[t], n_gt, "semi-supervised", binary)
        r = _prepare_res(res_frames[t], names[t], g.shape, binary)
        hi = int(r.max()) if r.size else 0
        if hi > n_gt:
            raise DataError(names[t], f"result holds object id {hi} but the first GT frame has {n_gt} objects")
        j[:, col], f[:, col] = frame_scores(g, r, n_gt, n_gt, pairs="diagonal", bound_th=bound_th)
    return j, f


def _score_unsup(gt_frames, res_frames, idx, n_gt, protocol, bound_th, binary, names):
    from scipy.optimize import linear_sum_assignment

    res = [_prepare_res(res_frames[t], names[t], gt_frames[t].shape, binary) for t in idx]
    n_res = max([int(r.max()) for r in res if r.size] + [0])
    if n_res > MAX_PROPOSALS:
        bad = next(names[t] for t, r in zip(idx, res, strict=True) if r.size and r.max() > MAX_PROPOSALS)
        raise DataError(bad, f"result holds proposal id {n_res}; at most {MAX_PROPOSALS} proposals are allowed")
    n_rows = max(n_res, n_gt)  # fewer proposals than objects: zero-padded, as the official code
    j = np.zeros((n_rows, n_gt, len(idx)))
    f = np.zeros((n_rows, n_gt, len(idx)))
    for col, (t, r) in enumerate(zip(idx, res, strict=True)):
        g, void = _prepare_gt(gt_frames[t], n_gt, "unsupervised", binary)
        j[:, :, col], f[:, :, col] = frame_scores(g, r, n_gt, n_rows, void=void, pairs="all", bound_th=bound_th)
    all_metrics = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2 if len(idx) else np.zeros((n_rows, n_gt))
    row, col = linear_sum_assignment(-all_metrics)
    if protocol == "strict":  # report object k in row k (official: rows in proposal order)
        order = np.argsort(col)
        row, col = row[order], col[order]
    return j[row, col, :], f[row, col, :]


# ------------------------------------------------------------------------------------ CSV


def format_global_csv(results: dict[str, float]) -> str:
    """``global_results-<set>.csv``: the 7 columns with 3 decimals, as pandas ``to_csv`` writes them."""
    return ",".join(GLOBAL_COLUMNS) + "\n" + ",".join(_fmt(results[c]) for c in GLOBAL_COLUMNS) + "\n"


def format_per_sequence_csv(per_object: dict[str, dict[str, float]]) -> str:
    """``per-sequence_results-<set>.csv``: Sequence, J-Mean, F-Mean with rows ``<seq>_<objid>``."""
    lines = ["Sequence,J-Mean,F-Mean"]
    lines += [f"{k},{_fmt(v['J-Mean'])},{_fmt(v['F-Mean'])}" for k, v in per_object.items()]
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.3f}"  # pandas writes NaN as an empty field


# ------------------------------------------------------------------------------------ folders


def _read_index_png(path) -> np.ndarray:
    """[H, W] values of an indexed / grey label PNG (``read_label_png`` semantics and errors).

    8-bit ``P`` and ``L`` images are decoded straight into a numpy array: Pillow's ``np.asarray``
    copies the decoded image once more through ``tobytes``, which costs about as much as the decoding.
    The PNG decoder fills the image memory it finds already set, so it is given one that maps the
    array (``Image.frombuffer``); if it did not use it, or anything else is unusual (other modes,
    errors), the file is read again by ``read_label_png``.
    """
    from vidseg.metrics.vspw import read_label_png

    try:
        arr = _decode_into_array(path)
    except Exception:  # the plain reader reads the file again and raises the proper DataError
        arr = None
    return read_label_png(path) if arr is None else arr


def _decode_into_array(path) -> np.ndarray | None:
    from PIL import Image

    with Image.open(path) as img:
        mode, size = img.mode, img.size
        if img.format != "PNG" or mode not in ("L", "P"):
            return None
        arr = np.empty((size[1], size[0]), np.uint8)
        target = Image.frombuffer(mode, size, arr, "raw", mode, 0, 1).im  # shares arr's memory
        img.im = target
        img.load()
        ok = img.im is target and img.mode == mode and img.size == size
    return arr if ok else None


def davis_sequences(davis_root, year: str, subset: str) -> list[str]:
    """Sequence names of ``<root>/ImageSets/<year>/<set>.txt``."""
    from pathlib import Path

    path = Path(davis_root) / "ImageSets" / str(year) / f"{subset}.txt"
    if not path.is_file():
        raise DataError(path, "DAVIS image-set file not found")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _davis_job(job: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    gt_dir, res_dir = Path(job["gt_dir"]), Path(job["res_dir"])
    stems = job["stems"]
    skip = {0, len(stems) - 1} if job["task"] == "semi-supervised" else set()
    gts = [_read_index_png(gt_dir / f"{s}.png") for s in stems]
    res = [None if i in skip else _read_index_png(res_dir / f"{s}.png") for i, s in enumerate(stems)]
    ev = DAVISEvaluator(job["task"], job["protocol"], binary=job["binary"])
    ev.process(job["sequence"], gts, res, names=[str(res_dir / f"{s}.png") for s in stems])
    out: dict[str, Any] = {"state": ev.state_dict()}
    if job["with_t"]:
        from vidseg.metrics.davis_t import sequence_t

        out["T"] = sequence_t([r for r in res if r is not None], binary=True)
    return out


def _check_results(gt_root, res_root, sequences: list[str], task: str, protocol: str) -> dict[str, list[str]]:
    from pathlib import Path

    stems_of: dict[str, list[str]] = {}
    missing: list[str] = []
    for seq in sequences:
        gdir = Path(gt_root) / seq
        stems = sorted(p.stem for p in gdir.glob("*.png"))
        if not stems:
            raise DataError(gdir, "no ground-truth annotations (*.png) for this sequence")
        stems_of[seq] = stems
        need = stems[1:-1] if task == "semi-supervised" else stems
        have = {p.stem for p in (Path(res_root) / seq).glob("*.png")}
        missing += [f"{seq}/{s}.png" for s in need if s not in have]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(res_root, f"{len(missing)} result frames missing: {shown}")
    seqset = set(sequences)
    extra = sorted(p.name for p in Path(res_root).iterdir() if p.is_dir() and p.name not in seqset)
    if extra:
        msg = f"{len(extra)} result folders not in the evaluated set (ignored): {', '.join(extra[:5])}"
        if protocol == "strict":
            raise DataError(res_root, msg)
        warnings.warn(f"{res_root}: {msg}", stacklevel=2)
    return stems_of


def evaluate_davis_folder(davis_root, results, *, task: str = "semi-supervised", year: str = "2017",
                          subset: str = "val", protocol: str = "official", resolution: str = "480p",
                          workers: int = 1, with_t: bool = False, csv_dir=None,
                          progress: bool = True) -> dict[str, Any]:
    """Score a DAVIS results folder (``<results>/<seq>/<frame>.png``) as davis2017-evaluation does.

    Args:
        davis_root: DAVIS root with ``Annotations[_unsupervised]/<resolution>`` and ``ImageSets``.
        results: results folder.
        task: ``semi-supervised`` or ``unsupervised``.
        year: ``2017`` (multi-object) or ``2016`` (objects merged into one, result value > 0 = object).
        subset: image set (``val``, ``train``, ``test-dev``).
        protocol: ``official`` or ``strict``.
        resolution: annotation folder (``480p``).
        workers: processes (results do not depend on it).
        with_t: also compute the best-effort temporal stability T over the ``eval_t`` sequences.
        csv_dir: where to write ``global_results-<set>.csv`` and ``per-sequence_results-<set>.csv``
            (None: do not write). Unlike the official script, existing CSVs are always recomputed.
        progress: tqdm bar.

    Returns:
        Global results (J&F-Mean, J-Mean, ...; T if asked), ``per_object`` and counts.
    """
    from pathlib import Path

    from vidseg.fileio import write_text_atomic
    from vidseg.metrics.vspw import run_jobs

    check_protocol(protocol)
    sub = "Annotations_unsupervised" if task == "unsupervised" else "Annotations"
    gt_root = Path(davis_root) / sub / resolution
    if not gt_root.is_dir():
        raise DataError(gt_root, "DAVIS annotation folder not found")
    if not Path(results).is_dir():
        raise DataError(results, "results folder not found")
    sequences = davis_sequences(davis_root, year, subset)
    stems_of = _check_results(gt_root, results, sequences, task, protocol)
    t_seqs = set(eval_t_sequences()) if with_t else set()
    jobs = [{"gt_dir": str(gt_root / s), "res_dir": str(Path(results) / s), "stems": stems_of[s], "sequence": s,
             "task": task, "protocol": protocol, "binary": str(year) == "2016", "with_t": s in t_seqs}
            for s in sequences]
    ev = DAVISEvaluator(task, protocol, binary=str(year) == "2016")
    t_values: dict[str, float] = {}
    for job, res in zip(jobs, run_jobs(_davis_job, jobs, workers, progress, desc="DAVIS sequences"), strict=True):
        ev.merge(res["state"])
        if "T" in res:
            t_values[job["sequence"]] = res["T"]
    out = ev.evaluate()
    per = ev.per_object()
    if with_t:
        vals = np.array(list(t_values.values()), np.float64)
        out["T"] = float(np.nanmean(vals)) if len(vals) and not np.isnan(vals).all() else float("nan")
        out["T_sequences"] = t_values
    if csv_dir is not None:
        write_text_atomic(Path(csv_dir) / f"global_results-{subset}.csv", format_global_csv(out))
        write_text_atomic(Path(csv_dir) / f"per-sequence_results-{subset}.csv", format_per_sequence_csv(per))
    out["per_object"] = per
    out["protocol"], out["task"] = protocol, task
    return out


def eval_t_sequences() -> list[str]:
    """Names of the sequences marked ``eval_t`` in the DAVIS metadata (the T benchmark subset)."""
    from vidseg.categories import davis_db_info

    return [s["name"] for s in davis_db_info()["sequences"] if s.get("eval_t")]
