"""DAVIS J/F/statistics/protocols against plain reference implementations and the spec's rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from vidseg.errors import DataError
from vidseg.metrics.davis import bound_pixels, db_eval_iou, db_statistics, f_measure, seg2bmap
from vidseg.metrics.davis_fast import frame_scores
from vidseg.metrics.davis_folder import (
    DAVISEvaluator,
    format_global_csv,
    format_per_sequence_csv,
    score_sequence,
)

from .brute_force_vspw_davis import bf_fmeasure, bf_jaccard, bf_seg2bmap, bf_statistics


@st.composite
def mask_pair(draw, max_side=12):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kind = draw(st.sampled_from(["random", "blobs", "empty_gt", "empty_both", "full"]))
    a = rng.random((h, w)) < draw(st.floats(0, 1))
    b = rng.random((h, w)) < draw(st.floats(0, 1))
    if kind == "blobs":
        a = np.zeros((h, w), bool)
        b = np.zeros((h, w), bool)
        a[rng.integers(0, h): rng.integers(0, h + 1), rng.integers(0, w): rng.integers(0, w + 1)] = True
        b[rng.integers(0, h): rng.integers(0, h + 1), rng.integers(0, w): rng.integers(0, w + 1)] = True
    elif kind == "empty_gt":
        a[:] = False
    elif kind == "empty_both":
        a[:] = False
        b[:] = False
    elif kind == "full":
        a[:] = True
    void = rng.random((h, w)) < draw(st.sampled_from([0.0, 0.2, 1.0]))
    return a, b, void


@settings(max_examples=300, deadline=None)
@given(mask_pair(), st.sampled_from([0.008, 1, 2, 3, 0.3]), st.booleans())
def test_j_and_f_match_definitions(case, bound_th, use_void):
    gt, pred, void = case
    v = void if use_void else None
    assert db_eval_iou(gt, pred, v) == bf_jaccard(gt, pred, v)
    np.testing.assert_allclose(f_measure(pred, gt, v, bound_th), bf_fmeasure(gt, pred, v, bound_th), rtol=0, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(mask_pair(max_side=10))
def test_seg2bmap_matches_definition(case):
    np.testing.assert_array_equal(seg2bmap(case[0]), bf_seg2bmap(case[0]))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_frame_scores_all_pairs(seed, n_gt, n_res, use_void):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 14, 2)
    gt = rng.integers(0, n_gt + 1, (h, w))
    res = rng.integers(0, n_res + 1, (h, w))
    void = (rng.random((h, w)) < 0.2) if use_void else None
    j, f = frame_scores(gt, res, n_gt, n_res, void=void, pairs="all", bound_th=2)
    for p in range(n_res):
        for g in range(n_gt):
            assert j[p, g] == bf_jaccard(gt == g + 1, res == p + 1, void)
            assert abs(f[p, g] - bf_fmeasure(gt == g + 1, res == p + 1, void, 2)) < 1e-15


def test_large_frame_crops_are_exact():
    """Crop-based F equals the full-frame official computation at 480x854 (bound 8 px)."""
    import cv2

    from vidseg.metrics.davis import disk

    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = np.zeros((480, 854), np.uint8)
        pr = np.zeros((480, 854), np.uint8)
        for m in (gt, pr):
            for _ in range(3):
                c = (int(rng.integers(0, 854)), int(rng.integers(0, 480)))
                cv2.ellipse(m, c, (int(rng.integers(5, 200)), int(rng.integers(5, 200))), 0, 0, 360, 1, -1)
        gt[-1, 100:300] = 1  # touches the bottom border
        r = bound_pixels(gt.shape)
        bg, bp = seg2bmap(gt), seg2bmap(pr)
        gd = cv2.dilate(bg.astype(np.uint8), disk(r))
        pd = cv2.dilate(bp.astype(np.uint8), disk(r))
        p = np.sum(bp * gd) / float(bp.sum())
        rc = np.sum(bg * pd) / float(bg.sum())
        assert f_measure(pr, gt) == (2 * p * rc / (p + rc) if p + rc else 0.0)


def test_bound_pixels():
    assert bound_pixels((480, 854)) == 8
    assert bound_pixels((1080, 1920)) == 18
    assert bound_pixels((10, 10), 3) == 3


def test_both_empty_gives_one_and_gt_empty_gives_zero():
    z = np.zeros((20, 30), bool)
    o = z.copy()
    o[5:10, 5:10] = True
    assert db_eval_iou(z, z) == 1 and f_measure(z, z) == 1
    assert db_eval_iou(z, o) == 0 and f_measure(o, z) == 0  # prediction on empty GT
    assert f_measure(z, o) == 0  # empty prediction on a non-empty GT


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=40),
       st.sampled_from(["official", "strict"]))
def test_statistics_match_reference(values, protocol):
    got = db_statistics(np.array(values), protocol)
    ref = bf_statistics(values, fix_uint8=protocol == "strict")
    # nanmean and the reference's mean of the non-NaN values sum in different orders: equal up to rounding
    np.testing.assert_allclose(np.array(got), np.array(ref, dtype=np.float64), rtol=1e-12, atol=1e-15)


def test_decay_uint8_quirk_past_255_frames():
    """Official bin ids wrap at 256 frames (uint8); strict does not."""
    v = np.linspace(1, 0, 300)
    _, _, d_off = db_statistics(v, "official")
    _, _, d_strict = db_statistics(v, "strict")
    assert d_strict == pytest.approx(np.mean(v[0:76]) - np.mean(v[224:300]))
    assert d_off != pytest.approx(d_strict)
    np.testing.assert_equal(db_statistics(v[:100], "official"), db_statistics(v[:100], "strict"))


def _seq(rng, t=6, h=12, w=15, n=2):
    gts = [rng.integers(0, n + 1, (h, w)).astype(np.uint8) for _ in range(t)]
    gts[0][0, 0] = n
    return gts


def test_semi_supervised_excludes_first_and_last_frame():
    rng = np.random.default_rng(3)
    gts = _seq(rng)
    res = [g.copy() for g in gts]
    res[0] = None
    res[-1] = np.full_like(gts[0], 200)  # never read
    j, f = score_sequence(gts, res, "semi-supervised")
    assert j.shape == (2, 4) and (j == 1).all() and (f == 1).all()


def test_semi_supervised_objects_from_first_frame_and_void_is_background():
    g0 = np.zeros((10, 10), np.uint8)
    g0[2:5, 2:5] = 1
    g = g0.copy()
    g[6:9, 6:9] = 2  # object 2 appears later: not evaluated
    g[0:2, :] = 255  # void -> background in semi-supervised
    res = g0.copy()
    res[0:2, :] = 1  # prediction in the void region counts as a false positive
    j, _ = score_sequence([g0, g, g0], [None, res, None], "semi-supervised")
    assert j.shape == (1, 1) and j[0, 0] == 9 / 29


def test_semi_supervised_too_many_ids_raise():
    g = np.zeros((6, 6), np.uint8)
    g[1:3, 1:3] = 1
    r = g.copy()
    r[4, 4] = 2
    with pytest.raises(DataError, match="object id 2"):
        score_sequence([g, g, g], [g, r, g], "semi-supervised", names=["a", "b", "c"])


def test_void_masks_unsupervised():
    """davis2017 test_void_masks: a prediction that extends only into void gives J = F = 1."""
    g = np.zeros((20, 20), np.uint8)
    g[5:10, 5:10] = 1
    g[10:15, 5:10] = 255
    r = np.zeros_like(g)
    r[5:15, 5:10] = 1
    j, f = score_sequence([g, g, g], [r, r, r], "unsupervised")
    assert (j == 1).all() and (f == 1).all()


def test_unsupervised_gt_permutation_gives_perfect_stats():
    """Proposals = GT with permuted ids: Hungarian matching recovers [M, R, D] = [1, 1, 0]."""
    rng = np.random.default_rng(5)
    gts = []
    for _ in range(8):
        g = np.zeros((16, 16), np.uint8)
        for k in range(1, 4):
            y, x = rng.integers(0, 12, 2)
            g[y: y + 4, x: x + 4] = k
        gts.append(g)
    for g in gts:
        g[0, 0], g[0, 1], g[0, 2] = 1, 2, 3
    perm = np.array([0, 3, 1, 2], np.uint8)
    ev = DAVISEvaluator("unsupervised")
    ev.process("s", gts, [perm[g] for g in gts])
    for v in ev.per_object().values():
        assert [v["J-Mean"], v["J-Recall"], v["J-Decay"]] == [1, 1, 0]
        assert [v["F-Mean"], v["F-Recall"], v["F-Decay"]] == [1, 1, 0]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 3), st.integers(0, 4), st.sampled_from(["official", "strict"]))
def test_unsupervised_matches_reference(seed, n_gt, n_res, protocol):
    rng = np.random.default_rng(seed)
    t, h, w = int(rng.integers(1, 4)), 9, 11
    gts = [rng.integers(0, n_gt + 1, (h, w)).astype(np.uint8) for _ in range(t)]
    gts[0][0, 0] = n_gt
    for g in gts:
        g[rng.random((h, w)) < 0.1] = 255
    res = [rng.integers(0, n_res + 1, (h, w)).astype(np.uint8) for _ in range(t)]
    j, f = score_sequence(gts, res, "unsupervised", protocol, bound_th=1)
    rows = max(n_gt, max(int(r.max()) for r in res))
    jr = np.zeros((rows, n_gt, t))
    fr = np.zeros((rows, n_gt, t))
    for p in range(rows):
        for g in range(n_gt):
            for k in range(t):
                void = gts[k] == 255
                jr[p, g, k] = bf_jaccard(gts[k] == g + 1, res[k] == p + 1, void)
                fr[p, g, k] = bf_fmeasure(gts[k] == g + 1, res[k] == p + 1, void, 1)
    row, col = linear_sum_assignment(-(jr.mean(2) + fr.mean(2)) / 2)
    if protocol == "strict":
        o = np.argsort(col)
        row, col = row[o], col[o]
    np.testing.assert_allclose(j, jr[row, col], atol=1e-15)
    np.testing.assert_allclose(f, fr[row, col], atol=1e-15)


def test_unsupervised_too_many_proposals():
    g = np.zeros((4, 4), np.uint8)
    g[0, 0] = 1
    r = np.full((4, 4), 21, np.uint8)
    with pytest.raises(DataError, match="at most 20"):
        score_sequence([g], [r], "unsupervised", names=["x.png"])


def test_evaluator_global_and_csv_and_merge():
    rng = np.random.default_rng(9)
    seqs = {f"s{i}": _seq(rng, t=5) for i in range(3)}
    res = {k: [rng.integers(0, 3, v[0].shape).astype(np.uint8) for _ in v] for k, v in seqs.items()}
    full = DAVISEvaluator()
    parts = [DAVISEvaluator(), DAVISEvaluator()]
    for i, k in enumerate(seqs):
        full.process(k, seqs[k], res[k])
        parts[i // 2].process(k, seqs[k], res[k])  # contiguous halves: same order as the full run
    merged = DAVISEvaluator()
    merged.merge(parts[0].state_dict())
    merged.merge(parts[1].state_dict())
    g1, g2 = full.evaluate(), merged.evaluate()
    assert g1 == g2 and g1["num_objects"] == 6
    per = full.per_object()
    assert g1["J-Mean"] == np.mean([v["J-Mean"] for v in per.values()])
    assert g1["J&F-Mean"] == (g1["J-Mean"] + g1["F-Mean"]) / 2
    csv = format_global_csv(g1).splitlines()
    assert csv[0] == "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
    assert csv[1].split(",")[1] == f"{g1['J-Mean']:.3f}"
    rows = format_per_sequence_csv(per).splitlines()
    assert rows[0] == "Sequence,J-Mean,F-Mean" and rows[1].startswith("s0_1,") and len(rows) == 7
