"""Best-effort DAVIS temporal stability T: sanity properties."""

from __future__ import annotations

import numpy as np

from vidseg.metrics.davis_t import dp_path, sequence_t, t_stability


def _ellipse(ax, ay, shift=0, size=48):
    import cv2

    m = np.zeros((size, size), np.uint8)
    cv2.ellipse(m, (size // 2 + shift, size // 2), (ax, ay), 0, 0, 360, 1, -1)
    return m


def test_identical_and_translated_masks_are_stable():
    a = _ellipse(15, 9)
    assert t_stability(a, a) == 0.0
    assert t_stability(a, _ellipse(15, 9, shift=3)) < 0.05


def test_shape_change_costs_more_and_empty_is_nan():
    a = _ellipse(15, 9)
    sq = np.zeros_like(a)
    sq[10:40, 20:26] = 1
    assert t_stability(a, sq) > t_stability(a, _ellipse(14, 10)) > 0
    assert np.isnan(t_stability(a, np.zeros_like(a)))
    assert np.isnan(sequence_t([np.zeros_like(a)] * 3))
    assert sequence_t([a, a, a]) == 0.0


def test_dp_path_is_monotone_and_cheapest_on_diagonal():
    cost = np.ones((5, 5)) - np.eye(5)
    assert dp_path(cost) == [(i, i) for i in range(5)]
