"""mVC_n: run-length implementation vs the window-by-window definition (VC_perclip.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseg.metrics.vc import VCVideoAccumulator, mean_vc, vc_window_accs

from .brute_force_vspw_davis import bf_vc_windows


@st.composite
def video(draw):
    t = draw(st.integers(1, 12))
    h = draw(st.integers(1, 4))
    w = draw(st.integers(1, 4))
    nvals = draw(st.integers(1, 3))  # few values -> long constant runs are common
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    gts = [rng.integers(0, nvals, (h, w)).astype(np.uint8) for _ in range(t)]
    preds = [rng.integers(0, nvals, (h, w)).astype(np.uint8) for _ in range(t)]
    if draw(st.booleans()):  # void everywhere in some frames
        for g in gts[: draw(st.integers(0, t))]:
            g[:] = 255
    return gts, preds


@settings(max_examples=200, deadline=None)
@given(video(), st.integers(1, 6), st.sampled_from(["official", "strict"]))
def test_vc_matches_definition(vid, n, protocol):
    gts, preds = vid
    fast = vc_window_accs(gts, preds, n, protocol)
    ref = bf_vc_windows(gts, preds, n, protocol)
    np.testing.assert_array_equal(fast, np.asarray(ref, np.float64))


@settings(max_examples=60, deadline=None)
@given(st.lists(video(), min_size=1, max_size=4), st.integers(2, 5))
def test_mvc_is_pooled_nanmean(videos, n):
    """Several n at once in one accumulator equal separate runs, and mVC pools the windows."""
    pooled = []
    for gts, preds in videos:
        acc = VCVideoAccumulator((n, n + 1), "official")
        for g, p in zip(gts, preds, strict=True):
            acc.add(g, p)
        res = acc.finish()
        np.testing.assert_array_equal(res[n + 1], bf_vc_windows(gts, preds, n + 1, "official"))
        pooled += bf_vc_windows(gts, preds, n, "official")
        videos_acc = res[n]
        np.testing.assert_array_equal(videos_acc, bf_vc_windows(gts, preds, n, "official"))
    allv = np.asarray(pooled, np.float64)
    expected = float(np.nanmean(allv)) if len(allv) and not np.isnan(allv).all() else float("nan")
    got = mean_vc([np.asarray(bf_vc_windows(g, p, n, "official")) for g, p in videos])
    np.testing.assert_equal(got, expected)


def test_off_by_one_20_frames_n16():
    """Spec §1.3: 20 frames with n=16 give 4 windows officially, 5 in strict."""
    gts = [np.zeros((2, 2), np.uint8)] * 20
    assert len(vc_window_accs(gts, gts, 16, "official")) == 4
    assert len(vc_window_accs(gts, gts, 16, "strict")) == 5
    # T <= n: skipped officially, one window in strict when T == n
    assert len(vc_window_accs(gts[:16], gts[:16], 16, "official")) == 0
    assert len(vc_window_accs(gts[:16], gts[:16], 16, "strict")) == 1


def test_constant_wrong_prediction_scores_one():
    """VC measures consistency only: a constant wrong prediction gets VC = 1."""
    gts = [np.full((3, 3), 7, np.uint8)] * 10
    preds = [np.full((3, 3), 42, np.uint8)] * 10
    assert mean_vc([vc_window_accs(gts, preds, 8)]) == 1.0


def test_void_not_excluded():
    """A pixel that stays void counts in the denominator (official: void not excluded)."""
    g = np.array([[255, 1]], np.uint8)
    gts = [g] * 5
    preds = [np.array([[3, 1]], np.uint8), np.array([[4, 1]], np.uint8)] * 2 + [np.array([[3, 1]], np.uint8)]
    accs = vc_window_accs(gts, preds, 3, "strict")
    np.testing.assert_array_equal(accs, [0.5, 0.5, 0.5])


def test_no_consistent_gt_is_nan_and_ignored():
    gts = [np.full((1, 1), i, np.uint8) for i in range(5)]
    assert np.isnan(vc_window_accs(gts, gts, 2, "strict")).all()
    assert np.isnan(mean_vc([vc_window_accs(gts, gts, 2, "strict")]))


def test_invalid_length():
    with pytest.raises(ValueError):
        VCVideoAccumulator((0,))
