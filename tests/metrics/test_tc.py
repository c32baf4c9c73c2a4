"""TC: confusion of pred_t (as GT) against the warped pred_t+1, official mIoU rule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseg.metrics.tc import TCEvaluator

from .brute_force_vspw_davis import bf_confusion, bf_flowwarp, bf_miou_official


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 5), st.integers(1, 6), st.integers(1, 6))
def test_tc_matches_brute_force(seed, t, h, w):
    rng = np.random.default_rng(seed)
    preds = [rng.integers(0, 4, (h, w)).astype(np.uint8) for _ in range(t)]
    flows = [rng.normal(0, 1.5, (h, w, 2)).astype(np.float32) for _ in range(t - 1)]
    ev = TCEvaluator(num_classes=5)
    cm = np.zeros((5, 5))
    for i in range(t - 1):
        ev.process(preds[i], preds[i + 1], flows[i])
        cm += bf_confusion(preds[i].astype(np.int64), bf_flowwarp(preds[i + 1], flows[i]).astype(np.int64), 5)
    # merging two halves gives the same state
    other = ev.clone_empty()
    other.merge(ev.state_dict())
    np.testing.assert_array_equal(other.cm, cm)
    np.testing.assert_equal(ev.evaluate()["TC"], bf_miou_official(cm))


def test_static_prediction_tc_quirk():
    """A static prediction with zero flow is not TC=1: the warp zeroes the last row/column (class 0)."""
    p = np.full((4, 4), 3, np.uint8)
    ev = TCEvaluator(num_classes=5)
    ev.process(p, p, np.zeros((4, 4, 2), np.float32))
    # class 3 row: 9 correct, 7 warped to 0 -> IoU 9/16; class 0 absent from "GT" -> excluded
    assert ev.evaluate()["TC"] == 9 / 16
