"""Plain reference implementations of VPQ^k and VIPSeg STQ, written from the definitions (spec §2.2-2.3).

Slow on purpose: every window re-stacks its frames and runs np.unique on the stacked maps, the matching is
a Python loop over pairs in ascending (gt, pred) order, and STQ paints full semantic/instance maps and
counts pixels. Used only by the tests to check the fast table-based implementation.

A video is a list of frames ``(gt_map, pred_map, gt_segments_info, pred_segments_info)`` with id maps
[H, W] (0 = void) and JSON-style lists of dicts (``id``, ``category_id``, ``iscrowd``, ``area``).
"""

from __future__ import annotations

import numpy as np

OFFSET = 1 << 24


def _segments(segments_info):
    out = {}
    for el in segments_info:
        if el["id"] in out:
            out[el["id"]]["area"] += el.get("area", 0)
        else:
            out[el["id"]] = dict(el)
    return out


def _tubes(frames, gt_area_from_png):
    gt_tubes, pred_tubes = {}, {}
    for gt_map, pred_map, gsegs, psegs in frames:
        g = _segments(gsegs)
        if gt_area_from_png:
            for sid in g:
                g[sid]["area"] = int((gt_map == sid).sum())
        p = _segments(psegs)
        for sid in p:
            p[sid]["area"] = int((pred_map == sid).sum())
        for tubes, segs in ((gt_tubes, g), (pred_tubes, p)):
            for sid, el in segs.items():
                if sid in tubes:
                    tubes[sid]["area"] += el["area"]
                else:
                    tubes[sid] = el
    return gt_tubes, pred_tubes


def _match(inter, gt_tubes, pred_tubes, stats):
    gt_matched, pred_matched = set(), set()
    for (gid, pid), n in inter.items():  # ascending (gt, pred)
        if gid not in gt_tubes or pid not in pred_tubes or gt_tubes[gid].get("iscrowd", 0):
            continue
        cat = gt_tubes[gid]["category_id"]
        if cat != pred_tubes[pid]["category_id"]:
            continue
        union = pred_tubes[pid]["area"] + gt_tubes[gid]["area"] - n - inter.get((0, pid), 0)
        iou = n / union
        assert iou <= 1.0
        if iou > 0.5:
            stats[cat]["tp"] += 1
            stats[cat]["iou"] += iou
            gt_matched.add(gid)
            pred_matched.add(pid)
    return gt_matched, pred_matched


def _window_stats(frames, categories, stats, gt_area_from_png=False):
    gt_stack = np.stack([f[0] for f in frames]).astype(np.uint64)
    pred_stack = np.stack([f[1] for f in frames]).astype(np.uint64)
    gt_tubes, pred_tubes = _tubes(frames, gt_area_from_png)
    keys, counts = np.unique(gt_stack * OFFSET + pred_stack, return_counts=True)
    inter = {(int(k) // OFFSET, int(k) % OFFSET): int(c) for k, c in zip(keys, counts, strict=True)}
    gt_matched, pred_matched = _match(inter, gt_tubes, pred_tubes, stats)
    crowd = {}
    for gid, el in gt_tubes.items():
        if gid in gt_matched:
            continue
        if el.get("iscrowd", 0):
            crowd[el["category_id"]] = gid
            continue
        stats[el["category_id"]]["fn"] += 1
    for pid, el in pred_tubes.items():
        if pid in pred_matched:
            continue
        ignored = inter.get((0, pid), 0)
        if el["category_id"] in crowd:
            ignored += inter.get((crowd[el["category_id"]], pid), 0)
        if ignored / el["area"] > 0.5:
            continue
        stats[el["category_id"]]["fp"] += 1


def vpq_stats(videos, categories, k, short_videos="skip", gt_area_from_png=False):
    """Per-category {iou, tp, fp, fn} summed over all windows of all videos (videos in order)."""
    total = {c: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0} for c in categories}
    for frames in videos:
        per_video = {c: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0} for c in categories}
        kk = k
        if len(frames) < k and short_videos == "whole" and frames:
            kk = len(frames)
        for start in range(len(frames) - kk + 1):
            _window_stats(frames[start:start + kk], categories, per_video, gt_area_from_png)
        for c in categories:
            for key in total[c]:
                total[c][key] += per_video[c][key]
    return total


def pq_average(stats, categories, isthing=None):
    """Mean PQ over categories with tp+fp+fn > 0 (``categories``: id -> isthing)."""
    pq, n = 0.0, 0
    for c, thing in categories.items():
        if isthing is not None and thing != isthing:
            continue
        s = stats[c]
        if s["tp"] + s["fp"] + s["fn"] == 0:
            continue
        n += 1
        pq += s["iou"] / (s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"])
    return pq / n if n else float("nan")


def _paint(f, side, numbers, ignore):
    sem = np.full(f[side].shape, ignore, np.int64)
    ins = np.full(f[side].shape, ignore, np.int64)
    for el in f[2 + side]:
        sem[f[side] == el["id"]] = el["category_id"]
        ins[f[side] == el["id"]] = numbers[el["id"]]
    return sem, ins


def _count_pixels(gkey, pkey, gt_mask, pred_mask, sizes, inter):
    for y in range(gkey.shape[0]):
        for x in range(gkey.shape[1]):
            if gt_mask[y, x]:
                sizes[0][gkey[y, x]] = sizes[0].get(gkey[y, x], 0) + 1
            if pred_mask[y, x]:
                sizes[1][pkey[y, x]] = sizes[1].get(pkey[y, x], 0) + 1
            if gt_mask[y, x] and pred_mask[y, x]:
                key = (gkey[y, x], pkey[y, x])
                inter[key] = inter.get(key, 0) + 1


def _stq_sequence(frames, num_classes, things, first_instance, shift, ignore):
    numbers = [{}, {}]
    for side in (0, 1):
        for f in frames:
            for el in f[2 + side]:
                numbers[side].setdefault(el["id"], len(numbers[side]) + first_instance)
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    sizes, inter = [{}, {}], {}
    for f in frames:
        (gs, gi), (ps, pi) = _paint(f, 0, numbers[0], ignore), _paint(f, 1, numbers[1], ignore)
        np.add.at(cm, (np.where(gs == ignore, num_classes, gs).ravel(),
                       np.where(ps == ignore, num_classes, ps).ravel()), 1)
        gt_thing = np.isin(gs, things)
        crowd = gt_thing & (gi == 0)
        _count_pixels((gs << shift) + gi, (ps << shift) + pi, gt_thing & ~crowd, np.isin(ps, things) & ~crowd,
                      sizes, inter)
    cm[num_classes, :] = 0
    aq = 0.0
    for g, gsize in sizes[0].items():
        aq += sum(n * n / (sizes[1][p] + gsize - n) for (gg, p), n in inter.items() if gg == g) / gsize
    return cm, aq, len(sizes[0])


def stq(videos, num_classes, things, first_instance=0, shift=16, ignore=255):
    """Global and per-sequence STQ/AQ/IoU, painting the label maps the way the VIPSeg driver does."""
    seq_results = []
    total_cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for frames in videos:
        if not frames:
            continue
        cm, aq, tubes = _stq_sequence(frames, num_classes, things, first_instance, shift, ignore)
        total_cm += cm
        seq_results.append((aq, tubes, _miou(cm)))
    aq_total = sum(r[0] for r in seq_results) / max(sum(r[1] for r in seq_results), 1e-15)
    iou = _miou(total_cm)
    per_seq = [(np.sqrt(r[0] / max(r[1], 1e-15) * r[2]), r[0] / max(r[1], 1e-15), r[2]) for r in seq_results]
    return {"STQ": float(np.sqrt(aq_total * iou)), "AQ": aq_total, "IoU": iou, "per_seq": per_seq}


def _miou(cm):
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    n = np.count_nonzero(union)
    return float(np.sum(tp / np.maximum(union, 1e-15)) / n) if n else float("nan")
