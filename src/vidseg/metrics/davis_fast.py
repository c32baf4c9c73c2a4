"""DAVIS J and F per frame, fast: exactly the numbers of :mod:`vidseg.metrics.davis` (the reference).

* One scan of the joint code ``gt * k + res`` (on the bounding box of the non-zero pixels) lists
  every pixel that can be on a boundary of either map, with its E/S/SE labels; each object's BSDS
  boundary is selected among those, and the joint pixel table for J is the sum of the horizontal
  run lengths per code (:class:`JointBoundaries`). With void, each map is scanned on its own and J
  comes from a joint histogram without the void pixels.
* F counts boundary pixels within Euclidean distance r of the other boundary: the disk is an exact
  union of a few rectangles, each tested with 4 reads of an integral image (:func:`_count_within`),
  which equals reading ``cv2.dilate(boundary, disk(r))`` at those pixels.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np

from vidseg.metrics.davis import BOUND_TH, _f_score, bound_pixels

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
