"""DAVIS temporal stability T -- a best-effort re-implementation (spec §3.6).

The official measure needs a C++ polygoniser (Clipper/psimpl) that is not reproduced here, so values
are close to, not equal to, the published ones. Steps, per pair of consecutive masks:

1. longest outer contour (``cv2.findContours``), simplified by ``cv2.approxPolyDP`` with tolerance 3;
2. upsampled so that no segment is longer than 3 px;
3. shape context per point: 12 angle x 5 log-radius bins, radii from 1/8 to 2 of the mean pairwise
   distance, absolute angles;
4. chi-square cost between the histograms, matched by dynamic programming (moves right, down,
   diagonal) from the first to the last point, then once more after rotating both contours to start
   at the cheapest node of that path (cyclic alignment);
5. matched pairs made one-to-one (each point keeps its cheapest pair, in both directions) and
   T = mean cost of the kept pairs. Sequence T = 5 x nanmean over pairs; NaN if a mask has no contour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_THETA, N_R, R_INNER, R_OUTER = 12, 5, 1.0 / 8, 2.0
MAGIC = 5.0


def longest_contour(mask: np.ndarray, tolerance: float = 3.0) -> np.ndarray | None:
    """[N, 2] float (x, y) vertices of the simplified longest contour, or None if the mask is empty."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    c = max(contours, key=lambda k: cv2.arcLength(k, True))
    poly = cv2.approxPolyDP(c, tolerance, True).reshape(-1, 2).astype(np.float64)
    return poly if len(poly) >= 2 else c.reshape(-1, 2).astype(np.float64)


def upsample(poly: np.ndarray, max_len: float = 3.0) -> np.ndarray:
    """Insert points on every edge of the closed polygon so no segment exceeds ``max_len``."""
    out = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        k = max(int(np.ceil(np.linalg.norm(b - a) / max_len)), 1)
        t = np.arange(k)[:, None] / k
        out.append(a + t * (b - a))
    return np.concatenate(out)


def shape_context(pts: np.ndarray) -> np.ndarray:
    """[N, 60] normalised shape-context histograms (12 angle x 5 log-radius bins)."""
    d = pts[None, :, :] - pts[:, None, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    n = len(pts)
    mean = dist.sum() / max(n * (n - 1), 1)
    r = dist / (mean if mean > 0 else 1.0)
    edges = np.logspace(np.log10(R_INNER), np.log10(R_OUTER), N_R)
    rbin = np.searchsorted(edges, r, side="left")  # 0..N_R (N_R = beyond r_outer)
    theta = np.mod(np.arctan2(d[..., 1], d[..., 0]), 2 * np.pi)
    tbin = np.minimum((theta / (2 * np.pi) * N_THETA).astype(int), N_THETA - 1)
    valid = (rbin < N_R) & ~np.eye(n, dtype=bool)
    hist = np.zeros((n, N_THETA * N_R))
    rows = np.repeat(np.arange(n), n).reshape(n, n)
    np.add.at(hist, (rows[valid], (rbin * N_THETA + tbin)[valid]), 1)
    s = hist.sum(1, keepdims=True)
    return hist / np.where(s > 0, s, 1)


def chi2_cost(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """[N, M] chi-square distances 0.5 * sum (a - b)^2 / (a + b + eps)."""
    a, b = h1[:, None, :], h2[None, :, :]
    return 0.5 * ((a - b) ** 2 / (a + b + np.finfo(float).eps)).sum(-1)


def dp_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Cheapest monotone path (right, down, diagonal) from (0, 0) to (N-1, M-1)."""
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        prev = acc[i - 1]
        best = np.minimum(prev, np.concatenate([[np.inf], prev[:-1]])) + cost[i]
        row = acc[i]
        row[0] = best[0]
        for j in range(1, m):  # the left move is sequential within a row
            row[j] = min(best[j], row[j - 1] + cost[i, j])
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while i or j:
        options = [(acc[i - 1, j - 1], i - 1, j - 1)] if i and j else []
        options += [(acc[i - 1, j], i - 1, j)] if i else []
        options += [(acc[i, j - 1], i, j - 1)] if j else []
        _, i, j = min(options)
        path.append((i, j))
    return path[::-1]


def match_cost(cost: np.ndarray) -> float:
    """Mean cost of the one-to-one pairs of the cyclically re-aligned DP matching."""
    path = dp_path(cost)
    i0, j0 = min(path, key=lambda p: cost[p])
    rolled = np.roll(np.roll(cost, -i0, axis=0), -j0, axis=1)
    path = dp_path(rolled)
    best_i: dict[int, tuple[float, int]] = {}
    best_j: dict[int, tuple[float, int]] = {}
    for i, j in path:
        c = rolled[i, j]
        if i not in best_i or c < best_i[i][0]:
            best_i[i] = (c, j)
        if j not in best_j or c < best_j[j][0]:
            best_j[j] = (c, i)
    kept = [c for i, (c, j) in best_i.items() if best_j[j][1] == i]
    return float(np.mean(kept))


def t_stability(mask_a: np.ndarray, mask_b: np.ndarray, max_points: int = 400) -> float:
    """Temporal instability between two binary masks (NaN if either has no contour)."""
    ca, cb = longest_contour(mask_a), longest_contour(mask_b)
    if ca is None or cb is None:
        return float("nan")
    pa, pb = upsample(ca), upsample(cb)
    pa = pa[np.linspace(0, len(pa) - 1, min(len(pa), max_points)).astype(int)]
    pb = pb[np.linspace(0, len(pb) - 1, min(len(pb), max_points)).astype(int)]
    return match_cost(chi2_cost(shape_context(pa), shape_context(pb)))


def sequence_t(masks: Sequence[np.ndarray], binary: bool = True) -> float:
    """5 x nanmean of ``t_stability`` over consecutive masks (foreground = value > 0)."""
    vals = [t_stability(a > 0, b > 0) for a, b in zip(masks[:-1], masks[1:], strict=True)]
    arr = np.asarray(vals, np.float64)
    if not len(arr) or np.isnan(arr).all():
        return float("nan")
    return MAGIC * float(np.nanmean(arr))
