"""STQ against the published expected values of deeplab2's numpy STQ unit tests (spec metrics.md §4).

The input maps below are the unit-test inputs (8x8, three frames; 1x5/1x6 tracks), written as digit rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidseg.metrics.stq import STQAccumulator

SHIFT = 16


def _grid(text: str) -> np.ndarray:
    return np.array([[int(ch) for ch in row] for row in text.split()], np.int64)


GT_SEM = [_grid("00000000 00000000 00020111 02222111 22222211 22222221 22222221 22222211"),
          _grid("00000000 00000000 02001100 22211110 22221111 22222111 22222111 22221111"),
          _grid("00000000 00000000 00000000 20111000 22111100 22211110 22211111 22211111")]
GT_INS = [_grid("00000000 00000000 00020000 02222000 22222200 22222220 22222220 22222200"),
          _grid("00000000 00000000 02000000 22200000 22220000 22222000 22222000 22220000"),
          _grid("00000000 00000000 00000000 20000000 22000000 22200000 22200000 22200000")]
PR_SEM = [_grid("00000000 00000000 00000100 00022111 02222211 22222221 22222221 22222221"),
          _grid("00000000 00000000 00001100 02221111 22221111 22222111 22222211 22222111"),
          _grid("00000000 00000000 00001000 00111100 22211100 22211111 22221111 22221111")]
PR_INS = [_grid("00000000 00000000 00000000 00022000 02222100 22222110 22221110 22221110"),
          _grid("00000000 00000000 00000000 02220000 22220000 22222000 22221100 22221000"),
          _grid("00000000 00000000 00000000 00000000 22200000 22200000 22220000 22220000")]


def test_complex_example_three_frames():
    acc = STQAccumulator(3, [2], 255, SHIFT)
    for t in range(3):
        acc.update((GT_SEM[t] << SHIFT) + GT_INS[t], (PR_SEM[t] << SHIFT) + PR_INS[t], 1)
    r = acc.result()
    np.testing.assert_almost_equal(r["STQ"], 0.66841773352)
    np.testing.assert_almost_equal(r["AQ"], 0.55366581415)
    np.testing.assert_almost_equal(r["IoU"], 0.8069529580309542)
    np.testing.assert_almost_equal(r["STQ_per_seq"], [0.66841773352])
    np.testing.assert_almost_equal(r["AQ_per_seq"], [0.55366581415])
    np.testing.assert_almost_equal(r["IoU_per_seq"], [0.8069529580309542])
    assert r["ID_per_seq"] == [1]
    assert r["Length_per_seq"] == [3]


def _track(values, sky=None):
    arr = np.array([values], np.int64)
    if sky is not None:
        arr = arr + (np.array([sky], np.int64) << SHIFT)
    return arr


GT_A = _track([1, 1, 1, 1, 1])
GT_CROWD = _track([0, 1, 1, 1, 1, 1])
GT_SKY = _track([0, 1, 1, 1, 1], sky=[1, 0, 0, 0, 0])
BASIC = [  # (name, ground truth, prediction, [STQ, AQ, IoU]); classes: 0 = cars (thing), 1 = sky
    ("ex0", GT_A, _track([1, 1, 1, 1, 1]), [1.0, 1.0, 1.0]),
    ("ex1", GT_A, _track([1, 1, 2, 2, 2]), [0.72111026, 0.52, 1.0]),
    ("ex2", GT_A, _track([1, 2, 2, 2, 2]), [0.82462113, 0.68, 1.0]),
    ("ex3", GT_A, _track([1, 2, 3, 4, 5]), [0.447213596, 0.2, 1.0]),
    ("ex4", GT_A, _track([1, 2, 1, 2, 2]), [0.72111026, 0.52, 1.0]),
    ("ex5", GT_A, _track([0, 1, 1, 1, 1], sky=[1, 0, 0, 0, 0]), [0.50596443, 0.64, 0.4]),
    ("ex6", GT_CROWD, _track([1, 1, 1, 1, 1, 1]), [1.0, 1.0, 1.0]),
    ("ex7", GT_CROWD, _track([2, 2, 2, 2, 1, 1]), [0.72111026, 0.52, 1.0]),
    ("ex8", GT_CROWD, _track([2, 2, 0, 1, 1, 1], sky=[0, 0, 1, 0, 0, 0]), [0.40824829, 0.4, 5.0 / 12.0]),
    ("ex9", GT_SKY, _track([1, 1, 1, 1, 1]), [0.56568542, 0.8, 0.4]),
    ("ex10", GT_SKY, _track([2, 2, 2, 1, 1]), [0.42426407, 0.45, 0.4]),
    ("ex11", GT_SKY, _track([2, 2, 0, 1, 1], sky=[0, 0, 1, 0, 0]), [0.3, 0.3, 0.3]),
]


@pytest.mark.parametrize(("name", "gt", "pred", "expected"), BASIC, ids=[b[0] for b in BASIC])
def test_basic_examples(name, gt, pred, expected):
    acc = STQAccumulator(2, [0], 255, SHIFT)
    acc.update(gt, pred, 1)
    r = acc.result()
    np.testing.assert_almost_equal([r["STQ"], r["AQ"], r["IoU"]], expected)
    np.testing.assert_almost_equal(r["STQ_per_seq"], [expected[0]])
    assert r["Length_per_seq"] == [1]


def test_void_prediction_counts_ignore_column():
    # spec §2.3 quirk: 2 classes with IoU 0.5 and 1 plus a predicted-void pixel give (0.5 + 1 + 0) / 3
    gt = np.array([[0, 0, 1, 1]]) << SHIFT
    pred = np.array([[0, 255, 1, 1]]) << SHIFT
    acc = STQAccumulator(2, [], 255, SHIFT)
    acc.update(gt, pred, 0)
    assert acc.result()["IoU"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_state_merge_equals_single_accumulator():
    a, b, whole = (STQAccumulator(3, [2], 255, SHIFT) for _ in range(3))
    for t in range(3):
        args = ((GT_SEM[t] << SHIFT) + GT_INS[t], (PR_SEM[t] << SHIFT) + PR_INS[t])
        a.update(*args, "x")
        b.update(*args[::-1], "y")
        whole.update(*args, "x")
    for t in range(3):
        whole.update((PR_SEM[t] << SHIFT) + PR_INS[t], (GT_SEM[t] << SHIFT) + GT_INS[t], "y")
    a.finalize_sequence("x")
    a.merge(b.state_dict())
    assert a.result() == whole.result()
