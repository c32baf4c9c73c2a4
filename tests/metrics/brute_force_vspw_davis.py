"""Plain, slow reference implementations written from the metric definitions (spec §1 and §3).

Used only by the tests to check the fast implementations in ``vidseg.metrics``. Loops are fine here.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- VSPW


def bf_shift(raw):
    """README recipe: label[label==0]=255; label=label-1; label[label==254]=255."""
    lab = raw.astype(np.int64).copy()
    lab[lab == 0] = 255
    lab = lab - 1
    lab[lab == 254] = 255
    return lab


def bf_confusion(gt, pred, k):
    cm = np.zeros((k, k), np.float64)
    for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist(), strict=True):
        if 0 <= g < k:
            cm[g, p] += 1
    return cm


def bf_miou_official(cm):
    k = cm.shape[0]
    total, count = 0.0, 0
    for c in range(k):
        row = cm[c, :].sum()
        if row > 0:
            union = row + cm[:, c].sum() - cm[c, c]
            total += cm[c, c] / union
            count += 1
    return total / count if count else float("nan")


def bf_miou_mmseg(cm):
    vals = []
    for c in range(cm.shape[0]):
        union = cm[c, :].sum() + cm[:, c].sum() - cm[c, c]
        if union > 0:
            vals.append(cm[c, c] / union)
    return sum(vals) / len(vals) if vals else float("nan")


def bf_wiou(cm):
    total = cm.sum()
    s = 0.0
    for c in range(cm.shape[0]):
        row = cm[c, :].sum()
        if row > 0:
            union = row + cm[:, c].sum() - cm[c, c]
            s += row / total * (cm[c, c] / union)
    return s


def bf_vc_windows(gts, preds, n, protocol):
    """Windows as the paper (T-n+1, strict) or VC_perclip.py (range(T-n), official)."""
    t = len(gts)
    starts = range(t - n) if protocol == "official" else range(t - n + 1)
    accs = []
    for i in starts:
        gt_c = np.ones(gts[0].shape, bool)
        pr_c = np.ones(gts[0].shape, bool)
        for j in range(1, n):
            gt_c &= gts[i] == gts[i + j]
            pr_c &= preds[i] == preds[i + j]
        den = int(gt_c.sum())
        accs.append(int((gt_c & pr_c).sum()) / den if den else float("nan"))
    return accs


def bf_flowwarp(labels, flow):
    """The warp described in spec §1.4: x_src = (px+fx)*W/(W-1) - 0.5, round half to even, outside -> 0.

    Float32 arithmetic in the order grid_sample uses: normalise g = 2*v/(W-1) - 1, then unnormalise
    ((g + 1) * W - 1) / 2.
    """
    h, w = labels.shape
    out = np.zeros_like(labels)
    f32 = np.float32
    for y in range(h):
        for x in range(w):
            vx = f32(x) + f32(flow[y, x, 0])
            vy = f32(y) + f32(flow[y, x, 1])
            gx = f32(f32(f32(2.0) * vx) / f32(max(w - 1, 1))) - f32(1.0)
            gy = f32(f32(f32(2.0) * vy) / f32(max(h - 1, 1))) - f32(1.0)
            sx = f32(f32(f32(gx + f32(1.0)) * f32(w)) - f32(1.0)) / f32(2.0)
            sy = f32(f32(f32(gy + f32(1.0)) * f32(h)) - f32(1.0)) / f32(2.0)
            ix, iy = np.rint(sx), np.rint(sy)  # rint = round half to even
            if 0 <= ix < w and 0 <= iy < h:
                out[y, x] = labels[int(iy), int(ix)]
    return out


# ---------------------------------------------------------------- DAVIS


def bf_jaccard(gt, pred, void=None):
    inter = union = 0
    for idx in np.ndindex(gt.shape):
        if void is not None and void[idx]:
            continue
        g, p = bool(gt[idx]), bool(pred[idx])
        inter += g and p
        union += g or p
    return 1.0 if union == 0 else inter / union


def bf_seg2bmap(seg):
    """BSDS seg2bmap: a pixel is boundary if it differs from its E, S or SE neighbour (zero past the
    border); last row compares E only, last column S only, bottom-right corner is never boundary."""
    seg = seg.astype(bool)
    h, w = seg.shape

    def at(y, x):
        return seg[y, x] if (y < h and x < w) else False

    b = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif y == h - 1:
                b[y, x] = seg[y, x] != at(y, x + 1)
            elif x == w - 1:
                b[y, x] = seg[y, x] != at(y + 1, x)
            else:
                b[y, x] = seg[y, x] != at(y, x + 1) or seg[y, x] != at(y + 1, x) or seg[y, x] != at(y + 1, x + 1)
    return b


def bf_dilate_disk(b, r):
    h, w = b.shape
    out = np.zeros_like(b)
    ys, xs = np.nonzero(b)
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dx * dx + dy * dy <= r * r and 0 <= y + dy < h and 0 <= x + dx < w:
                    out[y + dy, x + dx] = True
    return out


def bf_fmeasure(gt, pred, void=None, bound_th=0.008):
    h, w = gt.shape
    r = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w)))
    if void is not None:
        gt = gt & ~void
        pred = pred & ~void
    bf, bg = bf_seg2bmap(pred), bf_seg2bmap(gt)
    n_fg, n_gt = int(bf.sum()), int(bg.sum())
    if n_fg == 0 and n_gt > 0:
        p, rec = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        p, rec = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        p, rec = 1.0, 1.0
    else:
        p = int((bf & bf_dilate_disk(bg, r)).sum()) / n_fg
        rec = int((bg & bf_dilate_disk(bf, r)).sum()) / n_gt
    return 0.0 if p + rec == 0 else 2 * p * rec / (p + rec)


def bf_statistics(v, fix_uint8=False):
    v = np.asarray(v, np.float64)
    m = np.nanmean(v) if not np.isnan(v).all() else float("nan")
    r = float(np.mean([x > 0.5 for x in v]))
    n = len(v)
    ids = []
    for i in range(5):
        x = 1 + (n - 1) * i / 4  # linspace(1, N, 5)
        ids.append(int(math.floor(x + 0.5)) - 1)  # MATLAB round, half away from zero (x > 0)
    if not fix_uint8:
        ids = [i % 256 for i in ids]
    bins = [v[ids[i]: ids[i + 1] + 1] for i in range(4)]

    def nm(a):
        a = a[~np.isnan(a)]
        return float(a.mean()) if len(a) else float("nan")

    return m, r, nm(bins[0]) - nm(bins[3])
