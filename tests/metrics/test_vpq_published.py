"""VPQ^1 (image PQ logic) against the published 3x3 toy of deeplab2's panoptic_quality test (spec §4).

The toy uses 3 classes, ignored label 9 and label divisor 256. In deeplab2 only the label (9, instance 0) is
void; (9, instance > 0) are ordinary segments of a class outside the averaged range. PQ is averaged over
classes 0..2. Expected: pq 2/9, sq 1/3, rq 2/9, and tp/fn/fp per class 1/3, 2/3, 2/3.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidseg.metrics.vipseg_eval import VIPSegEvaluator
from vidseg.metrics.vpq import PanopticCategories, PQStats, pq_average

GT_CLASS = np.array([[0, 9, 9], [1, 2, 2], [1, 9, 9]])
GT_INST = np.array([[0, 2, 2], [1, 0, 0], [1, 0, 0]])
PRED_CLASS = np.array([[0, 0, 9], [1, 1, 1], [1, 9, 9]])
PRED_INST = np.array([[0, 0, 0], [0, 1, 1], [0, 1, 1]])


def _ids_and_segments(cls, inst):
    ids = np.where((cls == 9) & (inst == 0), 0, cls * 256 + inst + 1)
    segs = [{"id": int(i), "category_id": int((i - 1) // 256), "iscrowd": 0, "area": int((ids == i).sum())}
            for i in np.unique(ids) if i != 0]
    return ids, segs


def test_deeplab2_toy_with_ignored_label():
    cats = PanopticCategories(ids=(0, 1, 2, 9), isthing=(False, True, True, False))
    ev = VIPSegEvaluator(categories=cats, ks=(1,))
    g, gs = _ids_and_segments(GT_CLASS, GT_INST)
    p, ps = _ids_and_segments(PRED_CLASS, PRED_INST)
    ev.process_arrays("toy", [g], [p], [gs], [ps])
    s = ev._vpq[1]
    first3 = PQStats(s.iou[:3], s.tp[:3], s.fp[:3], s.fn[:3])
    avg, _ = pq_average(first3, PanopticCategories(ids=(0, 1, 2), isthing=(False, True, True)))
    assert avg["pq"] == pytest.approx(2 / 9)
    assert avg["sq"] == pytest.approx(1 / 3)
    assert avg["rq"] == pytest.approx(2 / 9)
    assert first3.tp.sum() / 3 == pytest.approx(1 / 3)
    assert first3.fn.sum() / 3 == pytest.approx(2 / 3)
    assert first3.fp.sum() / 3 == pytest.approx(2 / 3)


def test_vpq_final_is_mean_of_listed_k():
    # VIPSeg issue #6: 27.2/25.9/24.1/22.8/22.1 -> mean of five 24.42; the first four average 25.0 here
    # (the issue reports 24.99, from unrounded values)
    from vidseg.metrics.vpq import vpq_summary

    cats = PanopticCategories(ids=(0,), isthing=(False,))
    values = {1: 0.272, 2: 0.259, 4: 0.241, 6: 0.228, 8: 0.221}
    stats = {k: PQStats(np.array([v]), np.array([1]), np.array([0]), np.array([0])) for k, v in values.items()}
    assert vpq_summary(stats, cats)["VPQ_final"]["all"] == pytest.approx(0.2442)
    four = {k: stats[k] for k in (1, 2, 4, 6)}
    assert vpq_summary(four, cats)["VPQ_final"]["all"] == pytest.approx(0.25)
