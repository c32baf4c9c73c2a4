"""Video Panoptic Quality VPQ^k, computed from per-frame pair tables (one decode per frame for every k).

Semantics follow the official VIPSeg script ``eval_vpq_vspw.py`` (spec metrics.md §2.2):

* windows of ``k`` consecutive frames with stride 1 (``T - k + 1`` per video; videos with ``T < k`` add
  nothing unless ``short_videos="whole"``, the DEVA variant, which scores them as one window);
* a tube is one segment id over the window, its category (and crowd flag) are those of its first
  appearance in the window's JSON; GT tube area = sum of the JSON areas (``gt_area="json"``, official)
  or of the PNG areas (``"png"``); predicted tube area = sum of the PNG areas of the frames whose JSON lists it;
* ``IoU = inter / (area_pred + area_gt - inter - inter(VOID_gt, pred))`` for equal categories, non-crowd GT;
  a pair with IoU > 0.5 (strict) is a TP; unmatched non-crowd GT tubes are FN; unmatched predicted tubes
  are FP unless (void + same-category crowd overlap) / area_pred > 0.5;
* iou/tp/fp/fn are summed per category over all windows of all videos; PQ/SQ/RQ are averaged over the
  categories of the GT JSON with tp + fp + fn > 0 (separately for all / things / stuff).

The tube intersection over a window equals the sum of the per-frame pair counts (ids are the tube keys), so
every k is a sliding-window sum over the same per-frame tables. The per-category IoU sums are accumulated in
the same order as the official script (windows in order, pairs by ascending (gt id, pred id), videos in
order), so the floating-point results are identical, not merely close.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from vidseg.categories import vipseg_categories
from vidseg.errors import DataError
from vidseg.metrics.panoptic_tables import FrameTable

DEFAULT_KS = (1, 2, 4, 6, 8)


@dataclass(frozen=True)
class PanopticCategories:
    """The category list of a panoptic benchmark (order = order of the GT JSON ``categories``).

    Attributes:
        ids: category ids in list order.
        isthing: thing flag per category.
        names: category names.
    """

    ids: tuple[int, ...]
    isthing: tuple[bool, ...]
    names: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, categories: Iterable[dict]) -> PanopticCategories:
        cats = list(categories)
        return cls(tuple(int(c["id"]) for c in cats), tuple(bool(c.get("isthing", 0)) for c in cats),
                   tuple(str(c.get("name", c["id"])) for c in cats))

    @classmethod
    def vipseg(cls) -> PanopticCategories:
        """The 124 VIPSeg categories shipped with the package."""
        cats = vipseg_categories()
        return cls(tuple(c.id for c in cats), tuple(c.isthing for c in cats), tuple(c.name for c in cats))

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, category_ids: np.ndarray, where: str = "") -> np.ndarray:
        """Positions of ``category_ids`` in the list; raises DataError for an unknown id."""
        order = np.argsort(np.array(self.ids, np.int64), kind="stable")
        sorted_ids = np.array(self.ids, np.int64)[order]
        cid = np.asarray(category_ids, np.int64)
        pos = np.searchsorted(sorted_ids, cid)
        pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
        bad = (sorted_ids[pos] != cid) if len(sorted_ids) else np.ones(cid.shape, bool)
        if bad.any():
            raise DataError(where, f"unknown category_id {int(cid[bad][0])}")
        return order[pos]


@dataclass
class PQStats:
    """Per-category sums over windows: ``iou`` float64 [C], ``tp``, ``fp``, ``fn`` int64 [C]."""

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, num_categories: int) -> PQStats:
        z = np.zeros(num_categories, np.int64)
        return cls(np.zeros(num_categories, np.float64), z, z.copy(), z.copy())

    def __iadd__(self, other: PQStats) -> PQStats:
        self.iou = self.iou + other.iou
        self.tp = self.tp + other.tp
        self.fp = self.fp + other.fp
        self.fn = self.fn + other.fn
        return self

    def to_dict(self) -> dict:
        return {"iou": self.iou.copy(), "tp": self.tp.copy(), "fp": self.fp.copy(), "fn": self.fn.copy()}

    @classmethod
    def from_dict(cls, d: dict) -> PQStats:
        return cls(np.asarray(d["iou"], np.float64), np.asarray(d["tp"], np.int64),
                   np.asarray(d["fp"], np.int64), np.asarray(d["fn"], np.int64))


# ----------------------------------------------------------------------------------------------------------
# One video: dense [T, N] arrays over the video's ids and pairs
# ----------------------------------------------------------------------------------------------------------

@dataclass
class _SideArrays:
    """JSON/PNG facts of the GT or prediction ids of one video, each [T, N]."""

    ids: np.ndarray         # [N] raw ids, ascending
    in_json: np.ndarray     # bool
    json_area: np.ndarray   # int64, JSON areas summed over duplicates
    png_area: np.ndarray    # int64
    cat: np.ndarray         # int64 category *index* of the first JSON entry (-1 if absent)
    crowd: np.ndarray       # bool, crowd flag of the first JSON entry
    pos: np.ndarray         # int64 position of the first JSON entry in the frame's list


def _side_arrays(ids: np.ndarray, segs: list, png: list, cats: PanopticCategories,
                 names: list[str]) -> _SideArrays:
    t, n = len(segs), len(ids)
    out = _SideArrays(ids, np.zeros((t, n), bool), np.zeros((t, n), np.int64), np.zeros((t, n), np.int64),
                      np.full((t, n), -1, np.int64), np.zeros((t, n), bool), np.zeros((t, n), np.int64))
    for f, (seg, (png_ids, png_area)) in enumerate(zip(segs, png, strict=True)):
        out.png_area[f, np.searchsorted(ids, png_ids)] = png_area
        if not len(seg):
            continue
        col = np.searchsorted(ids, seg.ids)
        np.add.at(out.json_area[f], col, seg.areas)
        first_pos = np.unique(seg.ids, return_index=True)[1]
        fcol = col[first_pos]
        out.in_json[f, fcol] = True
        out.cat[f, fcol] = cats.index_of(seg.categories[first_pos], names[f])
        out.crowd[f, fcol] = seg.iscrowd[first_pos]
        out.pos[f, fcol] = first_pos
    return out


@dataclass
class VideoArrays:
    """Dense per-video arrays built from the frame tables (sizes: T frames, G/P ids, Q pairs)."""

    gt: _SideArrays
    pred: _SideArrays
    pair_g: np.ndarray      # [Q] GT column of each pair
    pair_p: np.ndarray      # [Q] prediction column of each pair
    inter: np.ndarray       # [T, Q] pixels of each pair per frame
    void_inter: np.ndarray  # [T, P] pixels of each prediction on GT id 0
    video: str = ""         # the video's name (frame names are "<video>/<frame>"), for error messages

    @property
    def num_frames(self) -> int:
        return self.inter.shape[0]

    @classmethod
    def from_frames(cls, frames: Sequence[FrameTable], cats: PanopticCategories) -> VideoArrays:
        names = [f.name for f in frames]
        gt_ids = np.unique(np.concatenate([np.zeros(0, np.int64)] + [f.gt_ids for f in frames]
                                          + [f.gt_segments.ids for f in frames]))
        pr_ids = np.unique(np.concatenate([np.zeros(0, np.int64)] + [f.pred_ids for f in frames]
                                          + [f.pred_segments.ids for f in frames]))
        gt = _side_arrays(gt_ids, [f.gt_segments for f in frames], [f.gt_png_ids() for f in frames], cats, names)
        pred = _side_arrays(pr_ids, [f.pred_segments for f in frames], [f.pred_png_ids() for f in frames],
                            cats, names)
        n_p = max(len(pr_ids), 1)
        keys = [np.searchsorted(gt_ids, f.gt_ids) * n_p + np.searchsorted(pr_ids, f.pred_ids) for f in frames]
        pair_keys = np.unique(np.concatenate([np.zeros(0, np.int64)] + keys))
        inter = np.zeros((len(frames), len(pair_keys)), np.int64)
        for t, (key, f) in enumerate(zip(keys, frames, strict=True)):
            inter[t, np.searchsorted(pair_keys, key)] = f.counts
        pair_g, pair_p = pair_keys // n_p, pair_keys % n_p
        void_inter = np.zeros((len(frames), len(pr_ids)), np.int64)
        on_void = gt_ids[pair_g] == 0
        void_inter[:, pair_p[on_void]] = inter[:, on_void]
        return cls(gt, pred, pair_g, pair_p, inter, void_inter, names[0].split("/")[0] if names else "")


def _window_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sums of ``k`` consecutive rows: [T, ...] -> [T-k+1, ...] (prefix sums over frames)."""
    c = np.zeros((a.shape[0] + 1, *a.shape[1:]), np.int64)
    np.cumsum(a, axis=0, out=c[1:])
    return c[k:] - c[:-k]


def _first_in_window(in_json: np.ndarray, n_windows: int) -> np.ndarray:
    """Frame index of the first JSON appearance at or after each window start: [W, N] (T if none)."""
    t = in_json.shape[0]
    idx = np.where(in_json, np.arange(t)[:, None], t)
    nxt = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    return nxt[:n_windows]


@dataclass
class _WindowTubes:
    present: np.ndarray  # [W, N] bool
    cat: np.ndarray      # [W, N] category index (first appearance)
    crowd: np.ndarray    # [W, N] bool
    area: np.ndarray     # [W, N] int64
    first: np.ndarray    # [W, N] first frame


def _tubes(side: _SideArrays, area: np.ndarray, k: int, n_windows: int) -> _WindowTubes:
    present = _window_sum(side.in_json.astype(np.int64), k) > 0
    first = _first_in_window(side.in_json, n_windows)
    f = np.minimum(first, side.in_json.shape[0] - 1)
    cat = np.take_along_axis(side.cat, f, axis=0)
    crowd = np.take_along_axis(side.crowd, f, axis=0) & present
    return _WindowTubes(present, cat, crowd, _window_sum(area, k), first)


def _bincount_cat(cats: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(cats.ravel(), minlength=n).astype(np.int64)


def video_pq_stats(va: VideoArrays, k: int, num_categories: int, gt_area: str = "json",
                   short_videos: str = "skip") -> PQStats:
    """Per-category iou/tp/fp/fn of one video for windows of ``k`` frames.

    Args:
        va: the video's arrays.
        k: window length (>= 1).
        num_categories: length of the category list.
        gt_area: ``"json"`` (official) or ``"png"`` for GT tube areas.
        short_videos: ``"skip"`` (official: T < k adds nothing) or ``"whole"`` (one window of all T frames).
    """
    stats = PQStats.zeros(num_categories)
    t = va.num_frames
    if t < k:
        if short_videos != "whole" or t == 0:
            return stats
        k = t
    w = t - k + 1
    g = _tubes(va.gt, va.gt.json_area if gt_area == "json" else va.gt.png_area, k, w)
    p = _tubes(va.pred, va.pred.png_area * va.pred.in_json, k, w)
    inter = _window_sum(va.inter, k)
    void = _window_sum(va.void_inter, k)
    pg, pp = va.pair_g, va.pair_p
    valid = ((inter > 0) & g.present[:, pg] & p.present[:, pp] & ~g.crowd[:, pg]
             & (g.cat[:, pg] == p.cat[:, pp]))
    union = p.area[:, pp] + g.area[:, pg] - inter - void[:, pp]
    if (valid & (inter > union)).any():
        wi, qi = np.argwhere(valid & (inter > union))[0]
        raise DataError(f"GT JSON, video {va.video}", f"tube IoU > 1 for GT segment {int(va.gt.ids[pg[qi]])} in frames "
                        f"{wi + 1}..{wi + k}: its JSON areas are smaller than its PNG pixels (missing from a "
                        "frame's segments_info, or a wrong area)")
    tp = valid & (2 * inter > union)
    wi, qi = np.nonzero(tp)  # row-major: windows in order, pairs by ascending (gt id, pred id)
    cats = g.cat[wi, pg[qi]]
    np.add.at(stats.iou, cats, inter[wi, qi] / union[wi, qi])
    stats.tp += _bincount_cat(cats, num_categories)
    g_matched = np.zeros_like(g.present)
    g_matched[wi, pg[qi]] = True
    p_matched = np.zeros_like(p.present)
    p_matched[wi, pp[qi]] = True
    fn = g.present & ~g_matched & ~g.crowd
    stats.fn += _bincount_cat(g.cat[fn], num_categories)
    ignored = void.copy()
    if g.crowd.any():
        ignored += _crowd_overlap(va, g, p, inter, p_matched)
    fp = p.present & ~p_matched & ~(2 * ignored > p.area)
    stats.fp += _bincount_cat(p.cat[fp], num_categories)
    return stats


def _crowd_overlap(va: VideoArrays, g: _WindowTubes, p: _WindowTubes, inter: np.ndarray,
                   p_matched: np.ndarray) -> np.ndarray:
    """Overlap of each unmatched prediction with *the* crowd region of its category, per window.

    As in the official script, one crowd tube per category counts: the last one in the order the tubes
    enter the window (first frame, then position in that frame's JSON).
    """
    out = np.zeros_like(p.area)
    for s in range(g.present.shape[0]):
        crowd_cols = np.flatnonzero(g.crowd[s])
        order = g.first[s, crowd_cols] * (1 << 32) + va.gt.pos[g.first[s, crowd_cols], crowd_cols]
        chosen: dict[int, int] = {}
        for col in crowd_cols[np.argsort(order, kind="stable")]:
            chosen[int(g.cat[s, col])] = int(col)
        for q in range(len(va.pair_g)):
            gc, pc = va.pair_g[q], va.pair_p[q]
            if p.present[s, pc] and not p_matched[s, pc] and chosen.get(int(p.cat[s, pc])) == gc:
                out[s, pc] += inter[s, q]
    return out


def video_vpq(frames: Sequence[FrameTable], cats: PanopticCategories, ks: Sequence[int] = DEFAULT_KS,
              gt_area: str = "json", short_videos: str = "skip") -> dict[int, PQStats]:
    """VPQ statistics of one video for every window length in ``ks`` (frames decoded once)."""
    va = VideoArrays.from_frames(frames, cats)
    return {k: video_pq_stats(va, k, len(cats), gt_area, short_videos) for k in ks}


# ----------------------------------------------------------------------------------------------------------
# Averages
# ----------------------------------------------------------------------------------------------------------

def pq_average(stats: PQStats, cats: PanopticCategories, isthing: bool | None = None) -> tuple[dict, list]:
    """PQ/SQ/RQ averaged over the categories with tp + fp + fn > 0 (official ``pq_average``).

    Returns:
        ({"pq", "sq", "rq", "n"}, per-category rows) where a row is a dict with
        id/name/isthing/pq/sq/rq/iou/tp/fp/fn. With n == 0 the averages are NaN (the official script
        divides by zero).
    """
    pq = sq = rq = 0.0
    n = 0
    rows = []
    for c, (cid, thing) in enumerate(zip(cats.ids, cats.isthing, strict=True)):
        if isthing is not None and thing != isthing:
            continue
        iou, tp, fp, fn = float(stats.iou[c]), int(stats.tp[c]), int(stats.fp[c]), int(stats.fn[c])
        row = {"id": cid, "name": cats.names[c] if cats.names else str(cid), "isthing": thing,
               "pq": 0.0, "sq": 0.0, "rq": 0.0, "iou": iou, "tp": tp, "fp": fp, "fn": fn}
        rows.append(row)
        if tp + fp + fn == 0:
            continue
        n += 1
        row["pq"] = iou / (tp + 0.5 * fp + 0.5 * fn)
        row["sq"] = iou / tp if tp != 0 else 0
        row["rq"] = tp / (tp + 0.5 * fp + 0.5 * fn)
        pq += row["pq"]
        sq += row["sq"]
        rq += row["rq"]
    if n == 0:
        nan = float("nan")
        return {"pq": nan, "sq": nan, "rq": nan, "n": 0}, rows
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, rows


def vpq_summary(stats_by_k: dict[int, PQStats], cats: PanopticCategories) -> dict:
    """Final VPQ numbers (fractions) from per-k statistics summed over a dataset.

    Returns:
        {"VPQ": {"<k>": {"all", "thing", "stuff", "pq/sq/rq/n per group"}}, "VPQ_final": {...},
         "per_category": {"<k>": rows}}.
    """
    out: dict = {"VPQ": {}, "VPQ_detail": {}, "per_category": {}}
    for k, stats in stats_by_k.items():
        groups = {}
        for name, flag in (("all", None), ("thing", True), ("stuff", False)):
            groups[name], rows = pq_average(stats, cats, flag)
            if flag is None:
                out["per_category"][str(k)] = rows
        out["VPQ"][str(k)] = {name: groups[name]["pq"] for name in groups}
        out["VPQ_detail"][str(k)] = groups
    if stats_by_k:
        # official vpq-final: sum(values) / len(values), on the percentages; here on fractions
        out["VPQ_final"] = {name: sum(v[name] for v in out["VPQ"].values()) / len(out["VPQ"])
                            for name in ("all", "thing", "stuff")}
    return out
